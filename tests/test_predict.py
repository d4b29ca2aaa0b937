"""Tests for konbu.predict's top-k: the k best classes of each row, as a sort would give them.

    PYTHONPATH=src python -m pytest tests/test_predict.py tests/test_reject.py -q

Reading images is tested in test_images.py, the model input in test_preprocess.py, MNIST-style
normalisation in test_ink.py, and predicting with a run (rejecting unsure answers, images with no
digit, unreadable files) in test_reject.py; `konbu predict` with bad files among good ones in
tests/cli/test_predict.py.
"""

import pytest
import torch

from konbu.errors import ShapeError
from konbu.predict import top_k


def test_top_k_matches_a_sort():
    probabilities = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    classes = ["cat", "dog", "eel"]
    result = top_k(probabilities, classes, k=2)
    assert result == [[{"label": "dog", "index": 1, "probability": pytest.approx(0.6)},
                       {"label": "eel", "index": 2, "probability": pytest.approx(0.3)}],
                      [{"label": "cat", "index": 0, "probability": pytest.approx(0.5)},
                       {"label": "eel", "index": 2, "probability": pytest.approx(0.3)}]]
    assert [len(row) for row in top_k(probabilities, classes, k=10)] == [3, 3]   # clipped
    assert isinstance(result[0][0]["probability"], float) and isinstance(result[0][0]["index"], int)
    with pytest.raises(ShapeError):
        top_k(probabilities, classes[:2], k=1)
