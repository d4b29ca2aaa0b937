"""A centred moving average: the trend of a noisy series, for the training curves and the lr-finder.

    from konbu.inspect.smoothing import centred_average
    centred_average([1.0, 2.0, 6.0, 3.0], window=3)     # array([1.5, 3.0, 3.6667, 4.5])
    centred_average([1.0, float("nan"), 3.0], 3)         # array([1.0, 2.0, 3.0]): the NaN is skipped

    python -m pytest tests/inspect/test_smoothing.py

Centred, not running: point i is the mean of the `window` points around it, so the trend does not
lag behind the data the way an exponential or trailing average does (over a 100-step lr sweep a
trailing average trails by tens of steps and pushes the suggested rate several times too high).
At both ends the window shrinks to the points that exist instead of padding with zeros, and a
non-finite value (a diverged batch's NaN loss) is left out of every mean it falls in rather than
spreading over the whole window. The result always has the input's length, even for a window
wider than the data (a sweep stopped after a few steps): every point is then the mean of all the
points within half a window of it.
"""

import numpy as np


def centred_average(values, window: int) -> np.ndarray:
    """Float array as long as `values`: the mean of the finite values among the `window` points
    centred on each point (for an even window, one more point before than after); NaN where none
    is finite. `window` must be a whole number >= 1; 1 returns the values (non-finite ones as NaN)."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a whole number of points >= 1, got {window!r}")
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"expected a 1-D series of values, got shape {values.shape}")
    if values.size == 0:
        return values.copy()
    finite = np.isfinite(values)
    kernel = np.ones(int(window))
    # "full" then the centred slice, not mode="same": "same" returns max(len, window) points, so a
    # window wider than the data would hand back a longer series than it was given
    start = (int(window) - 1) // 2
    sums = np.convolve(np.where(finite, values, 0.0), kernel)[start:start + values.size]
    counts = np.convolve(finite.astype(float), kernel)[start:start + values.size]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
