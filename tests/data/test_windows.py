import pytest
import torch
from transformers import AutoTokenizer

from prunekit.data.corpora import get_corpus, is_eval_file
from prunekit.data.sources import resolve_source
from prunekit.data.windows import calibration_windows, evaluation_windows
from prunekit.errors import PrunekitError


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_python_corpus_splits_are_disjoint_and_deterministic():
    corpus = get_corpus("python")
    calib, held_out = corpus.files("calib"), corpus.files("eval")
    assert calib and held_out
    assert not set(calib) & set(held_out)
    assert len(held_out) < len(calib)
    assert corpus.files("eval") == held_out


def test_split_is_a_function_of_the_relative_path_only():
    from pathlib import Path

    assert is_eval_file(Path("a/b.py")) == is_eval_file(Path("a/b.py"))
    share = sum(is_eval_file(Path(f"pkg/mod{i}.py")) for i in range(2000)) / 2000
    assert 0.07 < share < 0.13


def test_calibration_windows_are_seeded(tokenizer):
    source = resolve_source("python", "calib")
    a = calibration_windows(source, tokenizer, 4, 32, seed=0)
    b = calibration_windows(source, tokenizer, 4, 32, seed=0)
    c = calibration_windows(source, tokenizer, 4, 32, seed=1)
    assert a.shape == (4, 32)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_evaluation_windows_do_not_overlap_and_respect_budget(tokenizer):
    w = evaluation_windows(resolve_source("python", "eval"), tokenizer, 64, max_tokens=640)
    assert w.shape == (10, 64)
    assert len({tuple(r.tolist()) for r in w}) == 10


def test_no_bos_is_prepended_when_the_tokenizer_adds_none(tokenizer):
    w = evaluation_windows(resolve_source("python", "eval"), tokenizer, 16, max_tokens=64)
    assert tokenizer.bos_token_id is None or not (w[:, 0] == tokenizer.bos_token_id).all()


def test_user_folder_jsonl_and_errors(tmp_path, tokenizer):
    (tmp_path / "a.jsonl").write_text('{"text": "def f(x):\\n    return x * 2\\n"}\n' * 50)
    w = calibration_windows(resolve_source(str(tmp_path), "calib"), tokenizer, 2, 16, 0)
    assert w.shape == (2, 16)
    with pytest.raises(PrunekitError, match="fewer than 500 windows"):
        calibration_windows(resolve_source(str(tmp_path), "calib"), tokenizer, 500, 64, 0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PrunekitError, match="holds no text files"):
        resolve_source(str(empty), "calib")
    (tmp_path / "bad.jsonl").write_text("not json\n")
    with pytest.raises(PrunekitError, match="not valid JSON"):
        list(resolve_source(str(tmp_path / "bad.jsonl"), "calib").documents())
    with pytest.raises(PrunekitError, match="neither a built-in corpus"):
        resolve_source("klingon", "calib")
