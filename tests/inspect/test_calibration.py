"""konbu.inspect.calibration: temperature scaling, ECE, reliability bins and the diagram.

    .venv/bin/python -m pytest tests/inspect/test_calibration.py -q

Answer keys: a hand-computed ECE; logits drawn from a distribution that is calibrated by
construction (labels sampled from softmax(logits)), then scaled by a known factor; and a real
model made over-confident by multiplying its logits by 5.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from konbu.inspect.calibration import (
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    nll,
    plot_reliability,
    reliability,
)


def calibrated_logits(n=4000, classes=10, seed=0):
    """Logits and labels drawn from softmax(logits): calibrated by construction, so T = 1 is optimal."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=generator) * 2.0
    labels = torch.multinomial(logits.softmax(dim=1), 1, generator=generator).squeeze(1)
    return logits, labels


# ----------------------------------------------------------------------------- ECE, by hand

# Five predictions, three bins of width 1/3:
#   row  top prob  right?  bin
#   0    0.9       yes     (2/3, 1]
#   1    0.8       no      (2/3, 1]
#   2    0.6       yes     (1/3, 2/3]
#   3    0.5       no      (1/3, 2/3]
#   4    0.7       yes     (2/3, 1]
# bin (1/3, 2/3]: 2 rows, confidence 0.55, accuracy 1/2 -> |0.5 - 0.55| = 0.05, weight 2/5
# bin (2/3, 1]:   3 rows, confidence 0.8,  accuracy 2/3 -> |2/3 - 0.8| = 0.1333.., weight 3/5
# ECE = 0.4 * 0.05 + 0.6 * (0.8 - 2/3) = 0.02 + 0.08 = 0.1
HAND_PROBABILITIES = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.5, 0.5], [0.3, 0.7]])
HAND_LABELS = torch.tensor([0, 1, 1, 1, 1])


def test_ece_equals_hand_computed_example():
    assert expected_calibration_error(HAND_PROBABILITIES, HAND_LABELS, bins=3) == pytest.approx(0.1, abs=1e-12)


def test_reliability_bins_by_hand():
    table = reliability(HAND_PROBABILITIES, HAND_LABELS, bins=3)
    assert table["count"] == [0, 2, 3] and table["n"] == 5
    assert table["confidence"][0] is None and table["accuracy"][0] is None
    assert table["confidence"][1] == pytest.approx(0.55) and table["accuracy"][1] == pytest.approx(0.5)
    assert table["confidence"][2] == pytest.approx(0.8) and table["accuracy"][2] == pytest.approx(2 / 3)
    assert table["edges"] == pytest.approx([0, 1 / 3, 2 / 3, 1])


def test_bin_edges_are_right_closed():
    # 0.5 is the top edge of bin 0 of two: (0, 0.5]; 0.5000001 opens bin 1.
    probabilities = torch.tensor([[0.5, 0.5], [0.5000001, 0.4999999], [1.0, 0.0]], dtype=torch.float64)
    assert reliability(probabilities, torch.tensor([0, 0, 0]), bins=2)["count"] == [1, 2]


def test_ece_extremes():
    one_hot = F.one_hot(torch.tensor([2, 0, 1]), 3).double()
    assert expected_calibration_error(one_hot, torch.tensor([2, 0, 1])) == 0.0       # sure and right
    assert expected_calibration_error(one_hot, torch.tensor([0, 1, 2])) == 1.0       # sure and wrong
    assert expected_calibration_error(torch.empty(0, 3), torch.empty(0, dtype=torch.long)) == 0.0


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        expected_calibration_error(torch.ones(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(torch.ones(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="class indices"):
        nll(torch.ones(3, 2), torch.tensor([0, 1, 2]))


# ----------------------------------------------------------------------------- temperature

@pytest.mark.parametrize("scale", [5.0, 0.5])
def test_fitted_temperature_recovers_the_scale(scale):
    logits, labels = calibrated_logits()
    temperature = fit_temperature(logits * scale, labels)
    # Dividing by T undoes the scaling: T ~ scale (sampling noise on 4,000 labels: a few %).
    assert temperature == pytest.approx(scale, rel=0.06)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.06)


def test_temperature_minimises_nll():
    logits, labels = calibrated_logits(seed=1)
    logits = logits * 3
    temperature = fit_temperature(logits, labels)
    best = nll(logits, labels, temperature)
    for nearby in (temperature * 0.97, temperature * 1.03):
        assert best < nll(logits, labels, nearby)
    # Accuracy cannot change: dividing by T > 0 keeps every argmax.
    assert torch.equal((logits / temperature).argmax(dim=1), logits.argmax(dim=1))


def test_temperature_without_data_is_one():
    assert fit_temperature(torch.empty(0, 10), torch.empty(0, dtype=torch.long)) == 1.0


@pytest.fixture(scope="module")
def trained_logits():
    """Validation logits of a small real model: logistic regression on the 8x8 digits."""
    from konbu.data import load_dataset

    data = load_dataset("digits", "train")
    x = data.images.flatten(1).float() / 255
    y = data.labels
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(y), generator=generator)
    train, val = order[:1000], order[1000:]
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        F.cross_entropy(model(x[train]), y[train]).backward()
        optimizer.step()
    with torch.no_grad():
        return model(x[val]), y[val]


def test_temperature_scaling_lowers_nll_of_an_over_confident_model(trained_logits):
    logits, labels = trained_logits
    over_confident = logits * 5
    temperature = fit_temperature(over_confident, labels)
    summary = calibration_summary(over_confident, labels, temperature)
    assert temperature > 2.0                                   # it has to soften
    assert summary["val_nll_after"] < 0.8 * summary["val_nll_before"]
    assert summary["ece_after"] < summary["ece_before"]
    assert summary["n"] == labels.numel()
    assert set(summary) == {"temperature", "val_nll_before", "val_nll_after", "ece_before", "ece_after", "bins", "n"}


# ----------------------------------------------------------------------------- the figure

def test_plot_reliability_writes_a_png(tmp_path):
    logits, labels = calibrated_logits(n=800)
    path = plot_reliability(logits * 4, labels, 4.0, tmp_path / "figures" / "calibration.png")
    assert path == tmp_path / "figures" / "calibration.png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 800 and image.size[1] > 400
        assert len(image.convert("L").getcolors(256)) > 20           # not a blank canvas
    assert not list(path.parent.glob("*.tmp"))                     # written atomically
    with pytest.raises(ValueError, match="temperature"):
        plot_reliability(logits, labels, -1.0, tmp_path / "bad.png")
    assert math.isfinite(nll(logits, labels))
