"""konbu.inspect.smoothing.centred_average against a plain loop over the window and numpy's "same" convolution."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konbu.inspect.smoothing import centred_average


def loop_average(values, window):
    """The answer key: for each point, the mean of the finite values among the window around it."""
    before, after = window // 2, (window - 1) // 2
    out = []
    for i in range(len(values)):
        inside = [v for v in values[max(0, i - before):i + after + 1] if math.isfinite(v)]
        out.append(sum(inside) / len(inside) if inside else math.nan)
    return np.array(out)


def test_worked_example_and_shrinking_ends():
    # ends: (1 + 2) / 2 and (6 + 3) / 2, not divided by the full window of 3
    assert centred_average([1.0, 2.0, 6.0, 3.0], 3) == pytest.approx([1.5, 3.0, 11 / 3, 4.5])
    assert centred_average([0.0, 0.0, 0.0, 10.0], 2).tolist() == [0.0, 0.0, 0.0, 5.0]   # even: one more before


def test_window_wider_than_the_data_keeps_its_length():
    # a 3-step lr sweep smoothed with the 5-step window of a 100-step sweep: 3 points back, not 5
    assert centred_average([1.0, 2.0, 3.0], 5).tolist() == [2.0, 2.0, 2.0]
    assert centred_average([4.0], 9).tolist() == [4.0]
    assert centred_average([1.0, 3.0], 3).tolist() == [2.0, 2.0]


def test_non_finite_values_are_left_out():
    nan, inf = float("nan"), float("inf")
    assert centred_average([1.0, nan, 3.0], 3).tolist() == [1.0, 2.0, 3.0]
    assert centred_average([1.0, inf, 3.0, 5.0], 3).tolist() == [1.0, 2.0, 4.0, 4.0]
    smoothed = centred_average([nan, nan, nan, 7.0], 3)          # no finite value near the start: NaN
    assert np.isnan(smoothed[:2]).all() and smoothed[2:].tolist() == [7.0, 7.0]


@pytest.mark.parametrize("window", [1, 3, 4, 5, 25])
def test_same_numbers_as_numpy_same_convolution_when_the_window_fits(window):
    # What the training curves and the lr-finder each computed before they shared this function:
    # the ratio of two mode="same" convolutions. Bit for bit, not approximately.
    values = np.random.default_rng(window).normal(size=100).cumsum()
    kernel = np.ones(window)
    before = np.convolve(values, kernel, mode="same") / np.convolve(np.ones_like(values), kernel, mode="same")
    assert np.array_equal(centred_average(values.tolist(), window), before)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")), st.just(float("inf"))), max_size=60),
       st.integers(1, 25))
def test_matches_a_plain_loop(values, window):
    smoothed = centred_average(values, window)
    assert smoothed.shape == (len(values),)
    np.testing.assert_allclose(smoothed, loop_average(values, window), rtol=1e-9, atol=1e-6)


def test_window_of_one_is_the_identity():
    assert centred_average([3.0, -1.0, 2.5], 1).tolist() == [3.0, -1.0, 2.5]


def test_empty_and_bad_input():
    assert centred_average([], 5).shape == (0,)
    for window in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="window"):
            centred_average([1.0, 2.0], window)
    with pytest.raises(ValueError, match="1-D"):
        centred_average(np.zeros((2, 3)), 3)
