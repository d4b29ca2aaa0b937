"""`folder:PATH`: class sub-folders of mixed image formats, a train/test layout, and a CSV; grey
digits saved as colour JPEG or WebP load as one channel, like the same digits saved as PNG;
unreadable files are skipped with one warning, or refused with strict (also through the CLI).

    PYTHONPATH=src python -m pytest tests/data/test_folder.py -q
"""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from konbu.cli.testing import invoke as konbu
from konbu.data import dataset_info, dataset_options, load_data, load_dataset
from konbu.data.folder import NAMED_FILES, UnreadableFilesWarning
from konbu.errors import DatasetFormatError, MissingDataError, UnknownNameError

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
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(MissingDataError, match="a class folder with no images"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(UnknownNameError, match="folder:PATH"):
        load_dataset("imagenet")


# ---------------------------------------------------------------------------------------------
# Unreadable files: skipped with one warning naming them, or the folder refused with strict
# ---------------------------------------------------------------------------------------------

def break_two(root):
    """Add a 0-byte file to cat and a text file named .png to dog: [their names relative to root]."""
    (root / "cat" / "empty.png").write_bytes(b"")
    (root / "dog" / "notes.png").write_text("these are not pixels")
    return ["cat/empty.png", "dog/notes.png"]


def load_warned(name, **options):
    """(train, test, [the warnings load_data gave])."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train, test = load_data(name, **options)
    return train, test, [w for w in caught if issubclass(w.category, UnreadableFilesWarning)]


def test_unreadable_files_are_skipped_with_one_warning_naming_them(tmp_path):
    bad = break_two(make_folder(tmp_path / "pets"))
    train, test, caught = load_warned(f"folder:{tmp_path / 'pets'}")
    assert len(train) + len(test) == 10 and train.classes == ("cat", "dog")   # the 10 good images
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "skipped 2 of 12 files" in message
    assert "cat/empty.png (not a readable image (an empty file, 0 bytes)" in message
    assert "dog/notes.png (not a readable image" in message
    for image, label in zip(train.images, train.labels):   # the images kept their labels
        assert abs(float(image.float().mean()) - (40 + 160 * int(label))) < 3
    # not cached with files missing: the next load warns again, with the same data
    again, _, caught = load_warned(f"folder:{tmp_path / 'pets'}")
    assert len(caught) == 1 and torch.equal(again.images, train.images)
    for name in bad:   # once the files are removed, the folder loads (and caches) without a word
        (tmp_path / "pets" / name).unlink()
    for _ in range(2):
        assert load_warned(f"folder:{tmp_path / 'pets'}")[2] == []


def test_strict_refuses_the_folder_naming_the_files(tmp_path):
    make_folder(tmp_path / "pets")
    clean = load_dataset(f"folder:{tmp_path / 'pets'}", "train")   # cached: a clean folder
    assert torch.equal(load_dataset(f"folder:{tmp_path / 'pets'}", "train", strict=True).images, clean.images)
    break_two(tmp_path / "pets")
    load_warned(f"folder:{tmp_path / 'pets'}")   # a lenient load first must not let a strict one through
    with pytest.raises(DatasetFormatError, match=r"2 of 12 files: cat/empty.png \(.*\), dog/notes.png \(.*\) are "
                                                 r"not readable images.*--strict-data"):
        load_dataset(f"folder:{tmp_path / 'pets'}", "train", strict=True)
    with pytest.raises(DatasetFormatError, match="cat/empty.png"):
        dataset_info(f"folder:{tmp_path / 'pets'}", strict=True)
    # datasets of files konbu parses itself take the option and ignore it
    assert len(load_dataset("digits", "test", strict=True)) == len(load_dataset("digits", "test"))


def test_many_unreadable_files_are_counted_not_all_named(tmp_path):
    make_folder(tmp_path / "pets")
    for i in range(NAMED_FILES + 4):
        (tmp_path / "pets" / "dog" / f"bad{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    _, _, [warning] = load_warned(f"folder:{tmp_path / 'pets'}")
    message = str(warning.message)
    assert f"skipped {NAMED_FILES + 4} of {10 + NAMED_FILES + 4} files" in message and "and 4 more" in message
    assert message.count("dog/bad") == NAMED_FILES


def test_skipping_that_empties_a_class_or_a_split_is_refused(tmp_path):
    make_folder(tmp_path / "pets")
    for path in (tmp_path / "pets" / "dog").iterdir():
        path.write_text("not an image")
    with pytest.raises(DatasetFormatError, match=r"class 'dog' has no readable image left"), \
            pytest.warns(UnreadableFilesWarning, match="skipped 5 of 10 files"):
        load_dataset(f"folder:{tmp_path / 'pets'}", "train")
    make_folder(tmp_path / "d" / "train", per_class=3)
    make_folder(tmp_path / "d" / "test", per_class=1)
    (tmp_path / "d" / "test" / "dog" / "0.jpg").write_bytes(b"")
    train, test, caught = load_warned(f"folder:{tmp_path / 'd'}")   # a given split keeps its files
    assert (len(train), len(test), len(caught)) == (6, 1, 1) and test.labels.tolist() == [0]
    (tmp_path / "d" / "test" / "cat" / "0.png").write_bytes(b"")
    with pytest.raises(DatasetFormatError, match="the test split has no readable image left"), \
            pytest.warns(UnreadableFilesWarning):
        load_dataset(f"folder:{tmp_path / 'd'}", "train")


def test_strict_data_is_a_data_option_of_a_run():
    assert dataset_options({"dataset": "folder:x", "strict_data": True, "epochs": 3}) == {"strict": True}


def test_strict_data_through_the_cli(tmp_path):
    make_folder(tmp_path / "pets")
    break_two(tmp_path / "pets")
    name = f"folder:{tmp_path / 'pets'}"
    result = konbu("datasets", "info", name)
    assert result.exit_code == 0 and "train 8, test 2" in result.output
    assert result.output.count("warning:") == 1 and "skipped 2 of 12 files" in result.output
    for args in (["datasets", "info", name, "--strict-data"],
                 ["datasets", "show", name, "--strict-data", "--out", tmp_path / "grid.png"],
                 ["train", "--dataset", name, "--strict-data", "--epochs", "1", "--out", tmp_path / "run"]):
        result = konbu(*args)
        assert result.exit_code == 2, result.output
        output = " ".join(result.output.split())
        assert "cat/empty.png" in output and "dog/notes.png" in output and "not readable images" in output
        assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / "grid.png").exists()


def test_grey_levels_survive_the_cache(tmp_path):
    make_folder(tmp_path / "pets")
    first = load_dataset(f"folder:{tmp_path / 'pets'}", "train")
    second = load_dataset(f"folder:{tmp_path / 'pets'}", "train")
    assert np.array_equal(first.images.numpy(), second.images.numpy()) and first.classes == second.classes


# ---------------------------------------------------------------------------------------------
# Grey digits in lossy formats: one channel, as from PNG; colour stays colour
# ---------------------------------------------------------------------------------------------

DIGITS_PER_CLASS = 5


@pytest.fixture(scope="module")
def grey_digits():
    """[(28x28 uint8 white-on-black digit, its class name)], five zeros and five ones of mnist-sample."""
    test = load_dataset("mnist-sample", "test")
    picked = [index for label in (0, 1) for index in np.nonzero(test.labels.numpy() == label)[0][:DIGITS_PER_CLASS]]
    return [(test.images[index, 0].numpy(), str(int(test.labels[index]))) for index in picked]


def as_ycbcr(grey, cb, cr):
    """A grey picture whose stored chroma sits at (cb, cr): 128 is neutral; 127 or 129 is how an
    encoder that rounds its colour conversion the other way stores grey."""
    planes = [Image.fromarray(grey), Image.new("L", grey.shape[::-1], cb), Image.new("L", grey.shape[::-1], cr)]
    return Image.merge("YCbCr", planes)


GREY_FILES = {   # name -> (extension, grey array -> PIL image to save, save options)
    "jpeg rgb": ("jpg", lambda grey: Image.fromarray(grey).convert("RGB"), {}),
    "jpeg chroma one level off": ("jpg", lambda grey: as_ycbcr(grey, 127, 129), {}),
    "jpeg chroma one level off, quality 95": ("jpg", lambda grey: as_ycbcr(grey, 129, 127), {"quality": 95}),
    "webp rgb": ("webp", lambda grey: Image.fromarray(grey).convert("RGB"), {}),
    "webp rgba": ("webp", lambda grey: Image.fromarray(grey).convert("RGBA"), {}),
}


def save_digits(root, digits, extension, to_image, **options):
    for index, (digit, label) in enumerate(digits):
        path = root / label / f"{index}.{extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        to_image(digit).save(path, **options)
    return root


@pytest.mark.parametrize("kind", GREY_FILES)
def test_grey_digits_in_jpeg_and_webp_load_as_one_channel(tmp_path, grey_digits, kind):
    extension, to_image, options = GREY_FILES[kind]
    png = save_digits(tmp_path / "png", grey_digits, "png", Image.fromarray)
    lossy = save_digits(tmp_path / extension, grey_digits, extension, to_image, **options)
    with Image.open(next(lossy.rglob(f"*.{extension}"))) as first:
        assert first.mode in ("RGB", "RGBA")   # colour files, not grey ones
        if kind != "jpeg rgb":   # channels a level or more apart: an exact "all equal" rule reads colour
            assert np.ptp(np.asarray(first)[..., :3], axis=-1).max() > 0

    from_png = load_dataset(f"folder:{png}", "train")
    from_lossy = load_dataset(f"folder:{lossy}", "train")
    assert from_png.images.shape[1:] == (1, 28, 28)
    assert from_lossy.images.shape[1:] == (1, 28, 28) and from_lossy.info.image_shape == (1, 28, 28)
    # the same digits, within what the lossy format moved
    assert torch.equal(from_lossy.labels, from_png.labels)
    difference = (from_lossy.images.float() - from_png.images.float()).abs().mean()
    assert difference < 4


@pytest.mark.parametrize("extension", ["jpg", "webp", "png"])
@pytest.mark.parametrize("colour", ["blue ink", "sepia", "one red dot"])
def test_colour_images_stay_three_channels(tmp_path, grey_digits, extension, colour):
    def coloured(grey):
        rgb = np.stack([grey] * 3, axis=-1).astype(np.int16)
        if colour == "blue ink":     # white-on-black becomes blue on white
            rgb = 255 - rgb
            rgb[..., 2] = 255
        elif colour == "sepia":      # a faint warm tint: blue 24 levels below red
            rgb[..., 0] += 12
            rgb[..., 2] -= 12
        else:                        # grey, but for a 4x4 red mark in a corner
            rgb[:4, :4] = (220, 30, 30)
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    root = save_digits(tmp_path / "colour", grey_digits, extension, coloured)
    assert load_dataset(f"folder:{root}", "train").images.shape[1:] == (3, 28, 28)
