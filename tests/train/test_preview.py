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


def test_an_altflip_preview_shows_each_image_mirrored_in_every_other_copy(tmp_path, monkeypatch):
    import konbu.train.preview as preview
    drawn = []
    monkeypatch.setattr(preview, "plot_image_grid", lambda images, titles, out, **kw: drawn.append(images) or out)
    preview_augment("mnist-sample", "altflip", tmp_path / "grid.png", n=2, copies=4, seed=0, warn=lambda m: None)
    grid = drawn[0]
    for row in grid.split(5):                          # an original, then copies as epochs 1 to 4 see it
        original, first, second, third, fourth = row
        assert {bool(torch.equal(first, original)), bool(torch.equal(second, original))} == {True, False}
        assert torch.equal(first.flip(2), second) and torch.equal(first, third) and torch.equal(second, fourth)
