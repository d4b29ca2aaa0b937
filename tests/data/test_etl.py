"""ETL8B2, ETL9B, ETL8G and ETL9G files written with struct exactly as AIST lays them out (dummy
first record included), with the JIS codes of real kana; images checked after decoding."""

import struct

import numpy as np
import pytest

from konbu.data import dataset_info, is_available, load_dataset
from konbu.data import etl
from konbu.data.kana import ETL9_HIRAGANA
from konbu.errors import ConfigError, DatasetFormatError, MissingDataError

JIS = {"あ": 0x2422, "い": 0x2424, "う": 0x2426, "が": 0x242C, "ん": 0x2473,
       "ぁ": 0x2421, "ゃ": 0x2463, "ゐ": 0x2470,      # small kana (ETL8 only) and wi (not in the 71)
       "ア": 0x2522, "亜": 0x3021}                     # katakana and kanji: not hiragana, dropped


def bitmap(seed: int) -> np.ndarray:
    """A 63x64 1-bit image: a seeded random pattern, so a decoding slip can't go unnoticed."""
    return np.random.default_rng(seed).integers(0, 2, (63, 64)).astype(np.uint8)


def greymap(value: int) -> np.ndarray:
    """A 127x128 4-bit image: `value` everywhere but a ramp in the first row (nibble order shows)."""
    image = np.full((127, 128), value, dtype=np.uint8)
    image[0] = np.arange(128) % 16
    return image


def b_record(fmt, sheet, char, image):
    return struct.pack(fmt, sheet, JIS[char], b"A   ", np.packbits(image, axis=1).tobytes())


def g_record(fmt, sheet, char, image):
    packed = (image[:, 0::2] << 4 | image[:, 1::2]).astype(np.uint8).tobytes()   # high nibble first
    code = struct.pack(">H", JIS[char])
    return struct.pack(fmt, sheet, code, b"A       ", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, packed)


B_FORMATS = {"ETL8B2": ">HH4s504s", "ETL9B": ">HH4s504s64x"}
G_FORMATS = {"ETL8G": ">H2s8sI4B4H2B30x8128s11x", "ETL9G": ">H2s8sI4B4H2B34x8128s7x"}


def write_b(path, kind, records):
    """records: [(sheet, char, 63x64 bits)]; the first record written is AIST's dummy."""
    fmt = B_FORMATS[kind]
    dummy = struct.pack(fmt, 0, 0, b"    ", bytes(504))
    path.write_bytes(dummy + b"".join(b_record(fmt, *r) for r in records))
    return path


def write_g(path, kind, records):
    path.write_bytes(b"".join(g_record(G_FORMATS[kind], *r) for r in records))
    return path


def test_record_sizes_are_aists():
    assert [struct.calcsize(f) for f in B_FORMATS.values()] == [512, 576]
    assert [struct.calcsize(f) for f in G_FORMATS.values()] == [8199, 8199]
    assert {layout.name: layout.record for layout in etl.LAYOUTS} == {"ETL8B2": 512, "ETL9B": 576, "ETL8G": 8199,
                                                                        "ETL9G": 8199}


@pytest.mark.parametrize("kind", ["ETL8B2", "ETL9B"])
def test_b_files_decode(tmp_path, kind):
    records = [(7, "あ", bitmap(1)), (7, "ア", bitmap(2)), (8, "ぁ", bitmap(3)), (8, "亜", bitmap(4)),
               (9, "ん", bitmap(5))]
    path = write_b(tmp_path / (f"{kind}C1" if kind == "ETL8B2" else "ETL9B_1"), kind, records)
    layout = next(layout for layout in etl.LAYOUTS if layout.name == kind)
    chars, sheets, images = etl.read_file(layout, path)
    assert chars == ["あ", "ぁ", "ん"] and sheets.tolist() == [7, 8, 9]   # dummy, katakana and kanji dropped
    assert images.shape == (3, 63, 64)
    for image, seed in zip(images, (1, 3, 5)):
        assert np.array_equal(image, bitmap(seed) * 255)   # a set bit is ink: white on black


@pytest.mark.parametrize("kind", ["ETL8G", "ETL9G"])
def test_g_files_decode(tmp_path, kind):
    records = [(1, "い", greymap(3)), (2, "亜", greymap(4)), (3, "が", greymap(15))]
    path = write_g(tmp_path / f"{kind}_01", kind, records)
    layout = next(layout for layout in etl.LAYOUTS if layout.name == kind)
    chars, sheets, images = etl.read_file(layout, path)
    assert chars == ["い", "が"] and sheets.tolist() == [1, 3]
    assert images.shape == (2, 127, 128)
    assert np.array_equal(images[0], greymap(3) * 17) and np.array_equal(images[1], greymap(15) * 17)


def test_g_layouts_differ(tmp_path):
    """An ETL9G file read with ETL8G's layout would shift the image by 4 bytes: the layouts are not swapped."""
    path = write_g(tmp_path / "ETL9G_01", "ETL9G", [(1, "い", greymap(5))])
    etl8g = next(layout for layout in etl.LAYOUTS if layout.name == "ETL8G")
    assert not np.array_equal(etl.read_file(etl8g, path)[2][0], greymap(5) * 17)


def make_collection(folder, writers=6):
    """ETL8B2 + ETL9G files: every writer writes あ い ぁ ゐ; each writer's images hold its own grey level."""
    folder.mkdir(exist_ok=True)
    records_b = [(w, c, np.ones((63, 64), np.uint8)) for w in range(1, writers + 1) for c in "あいぁゐ"]
    write_b(folder / "ETL8B2C1", "ETL8B2", records_b)
    sub = folder / "ETL9G"
    sub.mkdir(exist_ok=True)
    records_g = [(w, c, np.full((127, 128), w, np.uint8)) for w in range(1, writers + 1) for c in "あいう"]
    write_g(sub / "ETL9G_01", "ETL9G", records_g)


def test_etl_hiragana_dataset(tmp_path):
    make_collection(tmp_path)
    assert is_available("etl-hiragana", tmp_path) and not is_available("etl-hiragana", None)
    train = load_dataset("etl-hiragana", "train", tmp_path)
    test = load_dataset("etl-hiragana", "test", tmp_path)
    assert train.classes == ("あ", "い", "う")      # ぁ (small) and ゐ (not ETL9's) are not in the default 71
    assert train.images.shape[1:] == (1, 28, 28) and train.info.image_shape == (1, 28, 28)
    assert len(train) + len(test) == 6 * 2 + 6 * 3
    assert train.info.aliases == ("a", "i", "u")
    # writers: each ETL9G writer's images are one grey level; none is on both sides of the split
    g_levels = lambda ds: {int(v) for v in ds.images[ds.images.amax(dim=(1, 2, 3)) < 255].amax(dim=(1, 2, 3))}
    assert g_levels(train) and g_levels(test) and not g_levels(train) & g_levels(test)
    assert len(test) < len(train)


def test_etl_options(tmp_path):
    make_collection(tmp_path)
    every = load_dataset("etl-hiragana", "train", tmp_path, image_size=16, classes="all")
    assert every.classes == ("ぁ", "あ", "い", "う", "ゐ") and every.images.shape[1:] == (1, 16, 16)
    assert dataset_info("etl-hiragana", tmp_path, classes="all").split_sizes["train"] == len(every)
    subset = load_dataset("etl-hiragana", "train", tmp_path, classes="i,あ")   # romaji or kana, in that order
    assert subset.classes == ("い", "あ") and set(subset.labels.tolist()) == {0, 1}
    with pytest.raises(ConfigError, match="not a class"):
        load_dataset("etl-hiragana", "train", tmp_path, classes="ka,a")
    assert len(ETL9_HIRAGANA) == 71 and dataset_info("etl-hiragana").classes == ETL9_HIRAGANA


def test_truncated_and_corrupt_files(tmp_path):
    path = write_g(tmp_path / "ETL8G_01", "ETL8G", [(1, "あ", greymap(1)), (1, "い", greymap(2))])
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetFormatError, match=r"ETL8G_01: 16,298 bytes .* 8199-byte ETL8G records: record 1 "
                                                 r"\(offset 8,199\) is cut short after 8099 bytes"):
        load_dataset("etl-hiragana", "train", tmp_path)
    path.unlink()
    records = [(1, "あ", bitmap(1)), (1, "い", bitmap(2))]
    raw = bytearray(write_b(tmp_path / "ETL9B_1", "ETL9B", records).read_bytes())
    raw[2 * 576 + 2: 2 * 576 + 4] = b"\xff\x00"   # record 2's JIS code
    (tmp_path / "ETL9B_1").write_bytes(bytes(raw))
    with pytest.raises(DatasetFormatError, match=r"ETL9B_1: record 2 \(offset 1,152\) has JIS code ff00"):
        load_dataset("etl-hiragana", "train", tmp_path)


def test_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(MissingDataError, match="--data-dir"):
        load_dataset("etl-hiragana", "train")
    with pytest.raises(MissingDataError, match=r"no ETL files in .*ETL8B2C1"):
        load_dataset("etl-hiragana", "train", tmp_path)


def test_decoding_matches_the_tutorials_pil_reader(tmp_path):
    """The handwritten-kana tutorial decoded records with PIL; its readers are the answer key."""
    from PIL import Image

    path = write_b(tmp_path / "ETL8B2C1", "ETL8B2", [(1, "あ", bitmap(9))])
    record = struct.unpack(">2H4s504s", path.read_bytes()[512:1024])
    theirs = np.asarray(Image.frombytes("1", (64, 63), record[3], "raw").convert("L"))
    ours = etl.read_file(etl.LAYOUTS[0], path)[2][0]
    assert np.array_equal(ours, theirs)

    image = np.random.default_rng(2).integers(0, 16, (127, 128)).astype(np.uint8)
    path = write_g(tmp_path / "ETL8G_01", "ETL8G", [(1, "い", image)])
    record = struct.unpack(G_FORMATS["ETL8G"], path.read_bytes())
    theirs = np.asarray(Image.frombytes("F", (128, 127), record[14], "bit", 4))   # 0..15
    ours = etl.read_file(etl.LAYOUTS[2], path)[2][0]
    assert np.array_equal(ours, (theirs * 17).astype(np.uint8))
