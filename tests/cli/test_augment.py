"""`konbu augment preview` through the CLI runner: a real PNG of the right size, the label-safety
warning, and a bad policy exiting 2 with a message instead of a traceback."""

from PIL import Image

from konbu.cli.testing import invoke as konbu


def test_preview_writes_a_png_grid(tmp_path):
    out = tmp_path / "grid.png"
    result = konbu("augment", "preview", "mnist-sample", "--augment", "digits,cutout=6,mixup=0.4",
                   "--out", out, "--n", "3", "--copies", "4", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output.replace("\n", "")
    assert "warning" not in result.output
    with Image.open(out) as image:
        image.verify()
    with Image.open(out) as image:
        width, height = image.size
        assert image.format == "PNG" and width > height > 100    # 3 rows of 5 cells: wider than tall


def test_preview_is_repeatable_under_a_seed(tmp_path):
    paths = [tmp_path / f"{name}.png" for name in ("a", "b", "c")]
    for path, seed in zip(paths, (0, 0, 1)):
        result = konbu("augment", "preview", "digits", "--augment", "rotate=20,shift=0.1", "--out", path,
                       "--n", "2", "--copies", "3", "--seed", seed)
        assert result.exit_code == 0, result.output
    pixels = [Image.open(path).convert("L").tobytes() for path in paths]
    assert pixels[0] == pixels[1] and pixels[0] != pixels[2]


def test_preview_warns_about_flipping_digits(tmp_path):
    result = konbu("augment", "preview", "mnist-sample", "--augment", "hflip", "--out", tmp_path / "g.png",
                   "--n", "2", "--copies", "2")
    assert result.exit_code == 0
    assert "warning" in result.output and "mirrored digit" in result.output


def test_bad_policy_exits_2_with_a_message(tmp_path):
    out = tmp_path / "g.png"
    result = konbu("augment", "preview", "mnist-sample", "--augment", "rotate=15,flop", "--out", out)
    assert result.exit_code == 2
    assert "unknown op 'flop'" in result.output and "Traceback" not in result.output
    assert not out.exists()
    result = konbu("augment", "preview", "mnist-sample", "--augment", "shift=2", "--out", out)
    assert result.exit_code == 2 and "out of range" in result.output
    result = konbu("augment", "preview", "no-such-data", "--augment", "digits", "--out", out)
    assert result.exit_code == 2
