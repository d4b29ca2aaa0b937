"""`konbu datasets info` and `konbu datasets show` through the CLI runner, on generated files."""

import numpy as np
import pytest
from PIL import Image

from konbu.cli.testing import invoke as konbu


@pytest.fixture(autouse=True)
def offline_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KONBU_HOME", str(tmp_path / "konbu-home"))
    monkeypatch.setenv("KONBU_MIRROR", "http://127.0.0.1:9/")   # closed port: no test reaches the internet


@pytest.fixture
def kmnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 20)):
        np.savez(tmp_path / f"kmnist-{split}-imgs.npz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        np.savez(tmp_path / f"kmnist-{split}-labels.npz", (np.arange(n) % 10).astype(np.uint8))
    return tmp_path


@pytest.mark.filterwarnings("ignore:.*differs from the published")
def test_info_shows_counts_stats_source_license_citation(kmnist_dir):
    result = konbu("datasets", "info", "kmnist", "--data-dir", kmnist_dir)
    assert result.exit_code == 0, result.output
    output = result.output
    for text in ("1×28×28", "train 40, test 20", "お", "tsu", "CC BY-SA 4.0", "Clanuwat", "codh.rois.ac.jp",
                 "mean / std", "samples per class"):
        assert text in output, text
    assert "│     0 │ お    │ o      │     4 │    2 │" in output   # label, class, romaji, train, test


def test_info_of_a_folder_with_options(tmp_path):
    for c, name in enumerate(("cat", "dog", "eel")):
        for i in range(5):
            path = tmp_path / "pets" / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", (10, 10), 50 * c).save(path)
    result = konbu("datasets", "info", f"folder:{tmp_path / 'pets'}", "--image-size", "16", "--classes", "dog,eel")
    assert result.exit_code == 0, result.output
    assert "1×16×16" in result.output and "train 8, test 2" in result.output and "cat" not in result.output


@pytest.mark.filterwarnings("ignore:.*differs from the published")
def test_show_writes_a_grid_with_kana_labels(kmnist_dir, tmp_path):
    out = tmp_path / "grid.png"
    result = konbu("datasets", "show", "kmnist", "--data-dir", kmnist_dir, "--out", out, "--per-class", "3")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output.replace("\n", "")
    with Image.open(out) as image:
        assert image.height > image.width > 200   # ten rows of three samples


def test_missing_data_and_unknown_names_exit_2(tmp_path):
    result = konbu("datasets", "info", "fashion-mnist", "--data-dir", tmp_path / "fm")
    assert result.exit_code == 2
    message = result.output.replace("\n", " ")
    assert "train-images-idx3-ubyte.gz" in message and "http://127.0.0.1:9/fashion-mnist/" in message
    assert f"put them in {tmp_path / 'fm'}" in message and "Traceback" not in message
    result = konbu("datasets", "show", "imagenet", "--out", tmp_path / "x.png")
    assert result.exit_code == 2 and "unknown dataset 'imagenet'" in result.output
    result = konbu("datasets", "info", "etl-hiragana")
    assert result.exit_code == 2 and "--data-dir" in result.output


def test_listing_marks_file_datasets():
    result = konbu("datasets")
    assert result.exit_code == 0
    for name in ("kmnist", "k49", "emnist-letters", "cifar100-coarse", "etl-hiragana", "folder:PATH"):
        assert name in result.output
