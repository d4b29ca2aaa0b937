"""Tests for konbu.preprocess (the serving contract): an image becomes exactly the uint8 tensor a
model sees: resized like PIL's bilinear, batched from any mix of sources, shape errors named.

    PYTHONPATH=src python -m pytest tests/test_preprocess.py -q

Fixtures are generated in tmp_path; PIL's own resize is the answer key. Reading every format is
tested in test_images.py, the MNIST-style ink normalisation in test_ink.py.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from konbu.data import load_dataset
from konbu.errors import ShapeError
from konbu.preprocess import prepare_batch, to_model_input

MNIST_PREPROCESS = {"image_shape": [1, 28, 28], "mean": [0.1307], "std": [0.3081],
                    "classes": [str(d) for d in range(10)], "ink": "mnist", "ink_box": 20}


def test_resize_to_model_shape_matches_pil_bilinear(tmp_path):
    path = tmp_path / "half.png"
    grey = np.full((24, 32), 230, dtype=np.uint8)
    grey[:, :16] = 20   # left half dark, right half light: an edge the filter has to blur
    Image.fromarray(grey).convert("RGB").save(path)
    preprocess = {"image_shape": [3, 12, 16], "mean": [0.5] * 3, "std": [0.25] * 3, "classes": ["a", "b"],
                  "ink": "", "ink_box": 0}
    tensor = to_model_input(path, preprocess)
    answer = np.asarray(Image.open(path).resize((16, 12), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    assert torch.equal(tensor, torch.from_numpy(np.ascontiguousarray(answer)))


def test_prepare_batch_mixes_sources(tmp_path):
    digit = load_dataset("mnist-sample", "test").images[1, 0].numpy()   # (28, 28) uint8
    path = tmp_path / "digit.png"
    Image.fromarray(digit).save(path)
    batch = prepare_batch([path, str(path), Image.open(path), digit], MNIST_PREPROCESS)
    assert batch.dtype == torch.uint8 and tuple(batch.shape) == (4, 1, 28, 28)
    assert all(torch.equal(batch[0], image) for image in batch)
    assert tuple(prepare_batch([], MNIST_PREPROCESS).shape) == (0, 1, 28, 28)


def test_bad_image_shape():
    with pytest.raises(ShapeError, match="image_shape"):
        to_model_input(np.zeros((4, 4), np.uint8), {"image_shape": [28, 28]})
