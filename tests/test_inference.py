"""Tests for konbu.inference: the on-device normalisation matches torchvision's Normalize.

    PYTHONPATH=src python -m pytest tests/test_inference.py -q
"""

import torch
from torchvision.transforms import Normalize

from konbu.inference import normalise


def test_normalise_matches_torchvision():
    images = torch.randint(0, 256, (5, 3, 6, 7), dtype=torch.uint8)
    mean, std = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]
    result = normalise(images, mean, std)
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, Normalize(mean, std)(images.float() / 255))
