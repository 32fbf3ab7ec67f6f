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


class _IntTokenizer:
    """Text is space-separated integers; token id = the integer (doc i holds 1000·i + j)."""

    bos_token_id = None

    def __call__(self, text, add_special_tokens=False):
        class Out:
            input_ids = [int(t) for t in text.split()]

        return Out()


class _Docs:
    name = "synthetic"

    def __init__(self, docs):
        self.docs = docs

    def documents(self, tokenizer=None):
        return iter(self.docs)


def _docs(n_docs: int, length: int) -> _Docs:
    return _Docs([" ".join(str(1000 * i + j) for j in range(length)) for i in range(n_docs)])


def test_calibration_windows_are_spread_over_many_documents():
    w = calibration_windows(_docs(20, 300), _IntTokenizer(), 10, 50, seed=0)
    per_doc = torch.bincount(w.flatten() // 1000, minlength=20)
    assert (per_doc > 0).sum() == 10  # ten windows, ten files; not the first file's first 500
    assert per_doc.max() == 50  # no file supplies more than one window's worth
    assert not torch.equal(w, calibration_windows(_docs(20, 300), _IntTokenizer(), 10, 50, 1))


def test_one_long_document_still_fills_every_window_without_reuse():
    w = calibration_windows(_docs(1, 1000), _IntTokenizer(), 10, 50, seed=0)
    assert w.shape == (10, 50)
    assert len(set(w.flatten().tolist())) == 500


def test_evaluation_is_fixed_spread_and_covers_everything_when_the_budget_allows():
    a = evaluation_windows(_docs(5, 120), _IntTokenizer(), 50, max_tokens=10_000)
    assert a.shape == (12, 50)
    assert sorted(a.flatten().tolist()) == sorted(
        1000 * i + j for i in range(5) for j in range(120)
    )
    b = evaluation_windows(_docs(5, 100), _IntTokenizer(), 50, max_tokens=150)
    assert b.shape == (3, 50)
    assert len(set((b.flatten() // 1000).tolist())) == 3  # three windows from three files
    assert torch.equal(b, evaluation_windows(_docs(5, 100), _IntTokenizer(), 50, max_tokens=150))
