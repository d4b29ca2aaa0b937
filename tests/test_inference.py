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


def test_test_time_augmentation_averages_the_mirror_and_the_shifted_views():
    import pytest
    import torch.nn.functional as F

    from konbu.errors import ConfigError
    from konbu.inference import logits

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 5)).eval()
    images = torch.randint(0, 256, (7, 3, 8, 8), dtype=torch.uint8)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    x = normalise(images, mean, std)
    with torch.no_grad():
        def pair(view):
            return 0.5 * (model(view) + model(view.flip(3)))

        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        expected = {"none": model(x), "flip": pair(x),
                    "flip-shift": 0.5 * pair(x) + 0.25 * (pair(padded[..., :8, :8]) + pair(padded[..., 2:, 2:]))}
    seen = {tta: logits(model, images, mean, std, batch_size=3, tta=tta) for tta in expected}
    for tta in expected:
        torch.testing.assert_close(seen[tta], expected[tta], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(seen["none"], seen["flip"]) and not torch.allclose(seen["flip"], seen["flip-shift"])
    channels_last = logits(model.to(memory_format=torch.channels_last), images, mean, std, channels_last=True,
                           tta="flip-shift")
    torch.testing.assert_close(channels_last, expected["flip-shift"], rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="none, flip, flip-shift"):
        logits(model, images, mean, std, tta="rotate")
