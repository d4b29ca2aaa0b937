"""`konbu show ...`: figures of a trained run (filters, activations, mistakes, ...), each a PNG.

    konbu show filters RUN [--layer NAME] [--out PATH]
"""

from ._app import group

show_app = group("show", "Draw what a trained model learned and where it fails, as PNG figures.")
