"""`python -m konbu ...`: the konbu command line, for when the `konbu` script is not on PATH (and for
launchers such as torchrun that start a module)."""

from .cli import main

main()
