"""`--from-run RUN`: a new run starts from a konbu run's model and weights (konbu.train.from_run)."""

import json

import pytest
import torch
from safetensors.torch import load_file

import konbu
from konbu.cli.testing import invoke
from konbu.data import convert_channels, fit_images
from konbu.errors import ConfigError, KonbuError

TINY_LR = 1e-9   # --lr must be positive: one adam step then moves a weight by about this much


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """tfjs-mnist trained briefly on mnist-sample: the run every test starts from."""
    out = tmp_path_factory.mktemp("source") / "src"
    return konbu.fit(model="tfjs-mnist", dataset="mnist-sample", steps=60, threads=2, out=str(out), quiet=True)


def _fit(source, out, **settings):
    return konbu.fit(from_run=str(source.path), steps=1, threads=2, lr=TINY_LR, out=str(out), quiet=True,
                     **settings)


def _read(path):
    return json.loads(path.read_text())


def test_digits_are_brought_to_the_runs_input_and_start_from_its_kernels(source, tmp_path):
    run = _fit(source, tmp_path / "digits", dataset="digits")
    assert _read(run.path / "preprocess.json")["image_shape"] == [1, 28, 28]
    assert _read(run.path / "preprocess.json")["mean"] == source.preprocess["mean"]   # the source's statistics
    initial = load_file(run.path / "initial.safetensors")
    trained = load_file(source.path / "weights.safetensors")
    assert initial and all(torch.equal(kernel, trained[name]) for name, kernel in initial.items())
    info = _read(run.path / "run.json")
    assert info["model"] == "tfjs-mnist" and info["config"]["from_run"] == str(source.path)
    assert info["from_run"] == {"path": str(source.path), "name": "src", "dataset": "mnist-sample", "head": "kept"}
    assert run.evaluate()["n"] == len(run.dataset("test"))   # the run's own data is fitted again when read


def test_same_classes_copy_every_weight(source, tmp_path):
    run = _fit(source, tmp_path / "same", dataset="mnist-sample")
    after = load_file(run.path / "weights.safetensors")
    before = load_file(source.path / "weights.safetensors")
    assert after.keys() == before.keys()
    for name, tensor in before.items():
        assert torch.allclose(after[name], tensor, atol=1e-6), name


def test_other_class_count_replaces_only_the_head(source, tmp_path):
    run = _fit(source, tmp_path / "three", dataset="mnist-sample", classes="0,1,2")
    after = load_file(run.path / "weights.safetensors")
    before = load_file(source.path / "weights.safetensors")
    head = "head.dense_1."
    assert after[head + "weight"].shape == (3, 64) and after[head + "bias"].shape == (3,)
    for name, tensor in before.items():
        if not name.startswith(head):
            assert torch.allclose(after[name], tensor, atol=1e-6), name
    assert _read(run.path / "run.json")["from_run"]["head"] == "replaced"
    assert run.model.num_classes == 3


def test_another_model_is_refused(source, tmp_path):
    with pytest.raises(ConfigError, match="lenet.*tfjs-mnist"):
        _fit(source, tmp_path / "x", dataset="digits", model="lenet")


def test_a_missing_run_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(KonbuError, match="nowhere"):
        konbu.fit(from_run=str(missing), dataset="digits", steps=1, out=str(tmp_path / "x"), quiet=True)


def test_a_damaged_run_is_a_clear_error(source, tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "model.json").write_text(source.path.joinpath("model.json").read_text())
    with pytest.raises(KonbuError, match="damaged"):
        konbu.fit(from_run=str(damaged), dataset="digits", steps=1, out=str(tmp_path / "x"), quiet=True)


def test_channels_convert_both_ways():
    grey = torch.randint(0, 256, (2, 1, 5, 5), dtype=torch.uint8)
    assert torch.equal(convert_channels(grey, 3), grey.repeat(1, 3, 1, 1))
    assert torch.equal(convert_channels(grey.repeat(1, 3, 1, 1), 1), grey)   # luma weights sum to 1
    assert fit_images(grey, (3, 7, 9)).shape == (2, 3, 7, 9)


def test_cli_from_run(source, tmp_path):
    result = invoke("train", "--from-run", source.path, "--dataset", "digits", "--steps", "2", "--threads", "2",
                    "--out", tmp_path / "cli")
    assert result.exit_code == 0, result.output
    assert _read(tmp_path / "cli" / "run.json")["from_run"]["head"] == "kept"


def test_cli_missing_run_exits_2(tmp_path):
    result = invoke("train", "--from-run", tmp_path / "nowhere", "--dataset", "digits", "--steps", "1",
                    "--out", tmp_path / "cli")
    assert result.exit_code == 2 and "nowhere" in result.output


def test_a_resume_does_not_read_the_source_again(source, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(source.path, copy)

    def stop_at_step_1(event):
        if event.kind == "batch" and event.data["step"] == 1:
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        konbu.fit(from_run=str(copy), dataset="digits", steps=3, threads=2, out=str(out), quiet=True,
                  listeners=[stop_at_step_1])
    shutil.rmtree(copy)   # last.ckpt has the weights; its own files the model and input
    run = konbu.fit(resume=str(out), quiet=True)
    assert run.info["status"] == "finished" and run.info["from_run"]["head"] == "kept"
    assert run.preprocess["image_shape"] == [1, 28, 28]
