"""konbu.train.preview: the augmentation preview as a function (`konbu augment preview` calls it)."""

import torch
from PIL import Image

from konbu.train.preview import pick_examples, preview_augment, target_title


def test_preview_writes_a_grid_and_hears_the_label_warning(tmp_path):
    heard = []
    path = preview_augment("mnist-sample", "hflip", tmp_path / "grid.png", n=2, copies=3, seed=0, warn=heard.append)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > image.height
    assert len(heard) == 1 and "mirrored digit" in heard[0]


def test_examples_take_distinct_classes_first_and_titles_show_mixed_targets():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    picked = pick_examples(labels, 3, torch.Generator().manual_seed(0))
    assert sorted(labels[picked].tolist()) == [0, 1, 2]
    classes = ["a", "b", "c"]
    assert target_title(torch.tensor(1), classes) == "b"
    assert target_title(torch.tensor([0.62, 0.38, 0.0]), classes) == "a 62% / b 38%"
    assert target_title(torch.tensor([1.0, 0.0, 0.0]), classes) == "a"
