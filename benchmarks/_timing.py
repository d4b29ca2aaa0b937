"""Timing shared by both halves of `predict_latency.py`: konbu's (this virtualenv) and Keras's
(`.venv-keras`, which has no konbu). Each script imports it from its own folder."""

import time


def timed(call, repeats):
    """Milliseconds per call, after 5 untimed calls (tracing, allocation, warm caches)."""
    for _ in range(5):
        call()
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out
