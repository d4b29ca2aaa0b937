"""Where a backbone's weights come from (konbu.models.weights): the published file, downloaded once and
hash-checked, or the user's own file, read without running any code."""

import io
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from konbu.data.download import konbu_home
from konbu.errors import ConfigError, MissingDataError
from konbu.models.weights import backbone_state, published, published_file, read_weights_file


@pytest.fixture(autouse=True)
def own_konbu_home(tmp_path, monkeypatch):
    """Each test its own download cache: what one test downloaded is not another's cached copy."""
    monkeypatch.setenv("KONBU_HOME", str(tmp_path / "konbu-home"))


def test_published_metadata_comes_from_torchvision():
    info = published("vgg16")
    assert info.url == "https://download.pytorch.org/models/vgg16-397923af.pth"
    assert (info.file, info.sha256) == ("vgg16-397923af.pth", "397923af")
    assert len(info.categories) == 1000 and info.categories[0] == "tench"
    assert (info.crop_size, info.resize_size, info.mean) == (224, 256, (0.485, 0.456, 0.406))
    assert published("inception_v3").crop_size == 299
    assert published("inception_v3").mean == (0.5, 0.5, 0.5)      # its weights expect [-1, 1]
    assert published("efficientnet_b0").interpolation == "bicubic"


def test_download_once_into_konbu_home_checked_by_its_hash(http_server, published_classifier):
    http_server.files[f"/weights/{published_classifier.file}"] = published_classifier.data
    path = published_file(published_classifier.name)
    assert path == konbu_home() / "weights" / published_classifier.file
    assert path.read_bytes() == published_classifier.data
    published_file(published_classifier.name)
    assert http_server.requests == [f"/weights/{published_classifier.file}"]   # cached: asked for once
    state = backbone_state(published_classifier.name)
    assert state and all(key.startswith("features.") for key in state)      # the classifier's keys left out
    path.unlink()


def test_a_download_that_fails_its_hash_is_not_kept(http_server, published_classifier):
    http_server.files[f"/weights/{published_classifier.file}"] = published_classifier.data[:-1] + b"x"
    with pytest.raises(MissingDataError, match="sha256 .* does not begin with the published"):
        published_file(published_classifier.name)
    assert not list((konbu_home() / "weights").glob("*"))                  # neither the file nor its .part


def test_offline_names_the_url_the_file_and_where_to_put_it(monkeypatch):
    monkeypatch.delenv("KONBU_MIRROR", raising=False)
    monkeypatch.setattr("konbu.data.download.Remote.urls", lambda self, file: [f"http://127.0.0.1:9/{file.name}"])
    with pytest.raises(MissingDataError) as error:
        published_file("resnet18")
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message and str(konbu_home() / "weights") in message
    assert "--weights FILE" in message


def test_the_published_url_is_torchvision_s(monkeypatch):
    seen = []
    monkeypatch.delenv("KONBU_MIRROR", raising=False)

    def refuse(url, target, file):
        from konbu.data.download import DownloadError
        seen.append(url)
        raise DownloadError("offline", unreachable=True)
    monkeypatch.setattr("konbu.data.download.download", refuse)
    with pytest.raises(MissingDataError, match="https://download.pytorch.org/models/resnet18-f37072fd.pth"):
        published_file("resnet18")
    assert seen == ["https://download.pytorch.org/models/resnet18-f37072fd.pth"]


def test_user_files_safetensors_and_pth(tmp_path, published_classifier):
    state = published_classifier.model.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
    from_safetensors = backbone_state(published_classifier.name, tmp_path / "w.safetensors")
    from_pth = backbone_state(published_classifier.name, published_classifier.path)
    assert from_safetensors.keys() == from_pth.keys()
    assert all(torch.equal(from_safetensors[k], from_pth[k]) for k in from_pth)


class _Runs:
    """A pickle that would run code when loaded."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pth_holding_anything_but_tensors_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"weight": torch.zeros(2), "note": "text"}, tmp_path / "mixed.pth")
    with pytest.raises(ConfigError, match="expected a state dict .*str"):
        read_weights_file(tmp_path / "mixed.pth")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(ConfigError, match="found list"):
        read_weights_file(tmp_path / "list.pth")
    buffer = io.BytesIO()
    pickle.dump({"weight": _Runs()}, buffer, protocol=2)
    (tmp_path / "evil.pth").write_bytes(buffer.getvalue())
    with pytest.raises(ConfigError, match="without running code"):
        read_weights_file(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match="not a readable safetensors"):
        read_weights_file(tmp_path / "junk.safetensors")


def test_another_architecture_s_weights_are_refused_naming_what_is_missing(published_classifier):
    with pytest.raises(ConfigError, match="no weights of a resnet18 backbone"):
        backbone_state("resnet18", published_classifier.path)
