"""`folder:PATH`: class sub-folders of mixed image formats, a train/test layout, and a CSV."""

import numpy as np
import pytest
from PIL import Image

from konbu.data import dataset_info, load_dataset
from konbu.errors import DatasetFormatError, ImageError, MissingDataError, UnknownNameError

FORMATS = ("png", "jpg", "bmp", "gif", "tiff", "webp")


def save(path, value, size=(12, 12), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = value if mode == "L" else (value, 255 - value, 0)
    Image.new(mode, size, colour).save(path)
    return path


def make_folder(root, per_class=5):
    for c, name in enumerate(("cat", "dog")):
        for i in range(per_class):
            save(root / name / f"{i}.{FORMATS[(i + c) % len(FORMATS)]}", 40 + 160 * c)
    return root


def test_class_folders_with_mixed_formats(tmp_path):
    make_folder(tmp_path / "pets")
    train = load_dataset(f"folder:{tmp_path / 'pets'}", "train")
    test = load_dataset(f"folder:{tmp_path / 'pets'}", "test")
    assert train.classes == ("cat", "dog") and len(train) == 8 and len(test) == 2   # 20% of each class
    assert train.images.shape[1:] == (1, 12, 12)   # one shared square size is kept
    for dataset in (train, test):   # every format decoded to its grey level (jpg/webp: lossy, near it)
        for image, label in zip(dataset.images, dataset.labels):
            assert abs(float(image.float().mean()) - (40 + 160 * int(label))) < 3
    resized = load_dataset(f"folder:{tmp_path / 'pets'}", "train", image_size=20)
    assert resized.images.shape[1:] == (1, 20, 20) and resized.info.image_shape == (1, 20, 20)


def test_mixed_sizes_and_colour(tmp_path):
    root = tmp_path / "shapes"
    save(root / "a" / "1.png", 10, size=(30, 20))
    save(root / "a" / "2.jpg", 10, size=(8, 8), mode="RGB")
    save(root / "b" / "1.bmp", 200, size=(16, 16))
    save(root / "b" / "2.gif", 200, size=(40, 40))
    train = load_dataset(f"folder:{root}", "train")
    assert train.images.shape[1:] == (3, 28, 28)   # any colour image: all RGB; mixed sizes: 28


def test_train_test_layout_is_used_as_it_is(tmp_path):
    make_folder(tmp_path / "d" / "train", per_class=3)
    make_folder(tmp_path / "d" / "test", per_class=2)
    info = dataset_info(f"folder:{tmp_path / 'd'}")
    assert info.split_sizes == {"train": 6, "test": 4} and info.classes == ("cat", "dog")


def test_csv_of_path_label(tmp_path):
    make_folder(tmp_path / "imgs", per_class=5)
    rows = ["path,label"] + [f"imgs/{p.parent.name}/{p.name},{'10' if p.parent.name == 'cat' else '9'}"
                             for p in sorted((tmp_path / "imgs").rglob("*.*"))]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    train = load_dataset(f"folder:{tmp_path / 'labels.csv'}", "train")
    assert train.classes == ("9", "10")   # numbers sort as numbers
    for image, label in zip(train.images, train.labels):
        assert abs(float(image.float().mean()) - (200 if label == 0 else 40)) < 3


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(MissingDataError, match="no such file or folder"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "bad.csv").write_text("a.png\n")
    with pytest.raises(DatasetFormatError, match=r"bad.csv: line 1 should be 'path,label'"):
        load_dataset(f"folder:{tmp_path / 'bad.csv'}")
    make_folder(tmp_path / "broken")
    (tmp_path / "broken" / "cat" / "9.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageError, match=r"9.png: not a readable image"):
        load_dataset(f"folder:{tmp_path / 'broken'}")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(MissingDataError, match="a class folder with no images"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(UnknownNameError, match="folder:PATH"):
        load_dataset("imagenet")


def test_grey_levels_survive_the_cache(tmp_path):
    make_folder(tmp_path / "pets")
    first = load_dataset(f"folder:{tmp_path / 'pets'}", "train")
    second = load_dataset(f"folder:{tmp_path / 'pets'}", "train")
    assert np.array_equal(first.images.numpy(), second.images.numpy()) and first.classes == second.classes
