"""One training job of the web app, in a process of its own (konbu.serve.jobs starts it):

    python -m konbu.serve.worker '{"settings": {"epochs": 1}, "out": "runs/NAME"}'
    python -m konbu.serve.worker '{"resume": "runs/NAME"}'

It is `konbu train`: the same fit, the same run directory, the same progress lines on stdout, a
KonbuError as one `error:` line and exit code 2, and a Ctrl-C (the stop button's SIGINT) as a clean
checkpoint and exit code 130.
"""

import json
import sys

from ..errors import KonbuError


def main(argv) -> int:
    request = json.loads(argv[0])
    from ..train import fit

    try:
        if "resume" in request:
            fit(resume=request["resume"])
        else:
            fit(out=request["out"], **request["settings"])
    except KonbuError as error:
        print(f"error: {error}", flush=True)
        return 2
    except KeyboardInterrupt:   # fit saved last.ckpt at the current step
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
