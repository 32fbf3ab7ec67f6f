"""Calibration sets: every form of calibration data through one builder, mixtures counted per
part, corpus-only specs unchanged, answered sequences through Wanda, HumanEval kept out."""

from __future__ import annotations

import copy
import sysconfig
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import prunekit
from prunekit.api import calibration_data
from prunekit.calibration.sets import build_calibration, check_spec, parse_spec, shares
from prunekit.data.decontam import humaneval_ngrams, is_contaminated
from prunekit.data.sources import resolve_source
from prunekit.data.windows import calibration_windows
from prunekit.errors import PrunekitError
from prunekit.evaluation.humaneval import load_problems
from prunekit.models.adapters import adapter_for

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FUNCS = 12  # clean functions in the folder, plus one HumanEval problem


def clean_functions() -> str:
    return "\n\n".join(
        f'def shift{i}(values, step):\n    """Add {i} times step to every value."""\n'
        f"    out = [v + {i} * step for v in values]\n    return out\n"
        for i in range(FUNCS)
    )


@pytest.fixture
def folder(tmp_path):
    """Python functions to ask for, one of them HumanEval/0 with its canonical solution."""
    p = load_problems()[0]
    path = tmp_path / "funcs"
    path.mkdir()
    (path / "funcs.py").write_text(clean_functions() + "\n\n" + p.prompt + p.canonical_solution)
    return path


@pytest.fixture
def answers(monkeypatch, tmp_path):
    """The model 'answers' every instruction with the corpus's own function (no generation, no
    sandbox): the answered path with a fixed, checked answer set."""
    monkeypatch.setenv("PRUNEKIT_HOME", str(tmp_path / "home"))
    asked: list[int] = []

    def fake(items, corpus, model, tokenizer, root, *args, **kwargs):
        asked.append(len(items))
        kept = {i.source: i.response for i in items}
        n = len(items)
        return kept, {"cache": "stub", "from_cache": True, "asked": n, "kept": n, "verdicts": {}}

    monkeypatch.setattr("prunekit.recovery.answers.teacher_answers", fake)
    return asked


@pytest.fixture
def tiny(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def build(spec, model, tok, samples, seq_len=32, batch_size=2):
    return build_calibration(
        spec,
        model,
        tok,
        samples=samples,
        seq_len=seq_len,
        seed=0,
        batch_size=batch_size,
        progress=False,
    )


def test_shares_split_evenly_and_sum_to_samples():
    assert shares(64, 3) == [22, 21, 21]
    assert shares(5, 2) == [3, 2] and shares(4, 4) == [1, 1, 1, 1]
    assert all(sum(shares(n, k)) == n for n in range(1, 40) for k in range(1, n + 1))


@pytest.mark.parametrize(("spec", "removed"), [("python", None), ("instruct:{folder}", 1)])
def test_a_single_source_gives_the_windows_and_batches_of_before(spec, removed, tiny, folder):
    _, tok = tiny
    spec = spec.format(folder=folder)
    before = calibration_windows(resolve_source(spec, "calib"), tok, 6, 32, 0)
    cal = build(spec, None, tok, 6, batch_size=4)
    assert cal.weights is None and len(cal.batches) == 2
    assert all(torch.equal(a, b) for a, b in zip(cal.batches, before.split(4)))
    windows, desc = calibration_data(tok, spec, 6, 32, 0)
    assert torch.equal(windows, before)
    assert {"source", "description", "licence", "samples", "seq_len", "seed", "tokens"} <= set(desc)
    assert desc["source"] == spec and desc["samples"] == 6 and desc["tokens"] == 6 * 32
    assert desc["removed_humaneval_overlap"] == removed and len(desc["parts"]) == 1


def test_a_mixture_counts_each_part_exactly(tiny, folder):
    _, tok = tiny
    corpus = str(STDLIB / "textwrap.py")
    cal = build(f"python,{corpus}", None, tok, 5)
    python, text = cal.parts
    assert (python.share, python.sequences, python.tokens) == (3, 3, 3 * 32)
    assert (text.share, text.sequences, text.tokens) == (2, 2, 2 * 32)
    assert [b.shape[0] for b in cal.batches] == [2, 1, 2]  # each part split by batch_size
    desc = cal.describe()
    assert desc["samples"] == 5 == sum(p["sequences"] for p in desc["parts"])
    assert desc["tokens"] == 5 * 32 == sum(p["tokens"] for p in desc["parts"])
    # each part's windows are the windows that part alone gives for its share
    alone = calibration_windows(resolve_source(corpus, "calib"), tok, 2, 32, 0)
    assert torch.equal(torch.cat(cal.batches[2:]), alone)


def test_a_path_with_a_comma_is_one_part(tmp_path, tiny):
    _, tok = tiny
    odd = tmp_path / "a,b"
    odd.mkdir()
    (odd / "t.py").write_text((STDLIB / "heapq.py").read_text())
    assert [p.text for p in parse_spec(str(odd))] == [str(odd)]
    assert build(str(odd), None, tok, 2).parts[0].sequences == 2


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("python,answered:nosuch", "calibration part 'answered:nosuch': data 'nosuch' is neither"),
        ("instruct:nosuch", "calibration part 'instruct:nosuch': data 'nosuch' is neither"),
        ("answered:{txt}", "has no Python files"),
        ("answered:instruct:python", "takes a corpus name or a path"),
        ("python,python", "names 'python' twice"),
        (" , ", "names no data"),
        ("", "names no data"),
        ("answered:", "takes a corpus name or a path"),
    ],
)
def test_a_bad_part_is_one_line_before_any_model(spec, needle, tmp_path):
    (tmp_path / "a.txt").write_text("prose only")
    with pytest.raises(PrunekitError, match=needle) as err:
        check_spec(spec.format(txt=tmp_path))
    assert "\n" not in str(err.value)


def test_answered_needs_the_model_and_a_sample_per_part(tiny, folder):
    _, tok = tiny
    with pytest.raises(PrunekitError, match="answered by the model being pruned"):
        calibration_data(tok, f"answered:{folder}", 4, 32, 0)
    with pytest.raises(PrunekitError, match="2 parts but 1 samples"):
        build(f"python,answered:{folder}", None, tok, 1)


def test_humaneval_never_enters_and_is_counted(tiny, folder, answers):
    model, tok = tiny
    banned = humaneval_ngrams()
    instruct = build(f"instruct:{folder}", None, tok, 2, seq_len=64)
    assert instruct.parts[0].removed_humaneval_overlap == 1  # the HumanEval function
    answered = build(f"answered:{folder}", model, tok, FUNCS + 1, seq_len=256)
    assert answers == [FUNCS + 1]  # every function asked
    assert answered.parts[0].removed_humaneval_overlap == 1
    assert answered.parts[0].sequences == FUNCS
    for c in (instruct, answered):
        texts = [tok.decode(row) for b in c.batches for row in b]
        assert not any(is_contaminated(t, banned) for t in texts)


def test_mixture_weights_cover_answers_and_whole_corpus_windows(tiny, folder, answers):
    model, tok = tiny
    cal = build(f"python,answered:{folder}", model, tok, 8, seq_len=128, batch_size=3)
    corpus, answered = cal.parts
    assert (corpus.share, corpus.sequences, answered.share) == (4, 4, 4)
    assert answered.kind == "answered" and answered.answers["asked"] == 4
    assert len(cal.weights) == len(cal.batches)
    n = len(list(cal.batches)) - answered.sequences
    for b, w in zip(cal.batches[:n], cal.weights[:n]):
        assert b.shape[1] == 128 and torch.all(w == 1)
    for b, w in zip(cal.batches[n:], cal.weights[n:]):
        assert b.shape[0] == 1 and w.shape == b.shape and 0 < w.sum() < b.shape[1]
    assert answered.scored_tokens == sum(int(w.sum()) for w in cal.weights[n:])
    assert cal.describe()["parts"][1]["answers"]["kept"] == 4


def _norms(model, batches) -> dict[str, torch.Tensor]:
    """Brute force: every Linear's input L2 norm over whole-model forwards of each batch."""
    from tests.conftest import linear_input_norms

    sq: dict[str, torch.Tensor] = {}
    for b in batches:
        for k, v in linear_input_norms(model, b).items():
            sq[k] = sq[k] + v.pow(2) if k in sq else v.pow(2)
    return {k: v.sqrt() for k, v in sq.items()}


def test_answered_sequences_flow_through_wanda(tiny, folder, answers):
    model, tok = tiny
    dense = copy.deepcopy(model)
    spec = f"{STDLIB / 'textwrap.py'},answered:{folder}"
    opts = dict(calib_samples=2 * (FUNCS + 1), seq_len=256, batch_size=4, progress=False)
    result = prunekit.prune(
        model, tok, method="wanda", sparsity=0.5, calib=spec, stream="dense", **opts
    )
    sp = result.report["sparsity"]
    assert sp["achieved"] == 0.5 and all(v == 0.5 for v in sp["per_layer"].values())
    corpus, answered = result.report["calibration"]["parts"]
    assert corpus["sequences"] == FUNCS + 1 and answered["sequences"] == FUNCS
    assert answered["removed_humaneval_overlap"] == 1
    # the masks are Wanda's on the statistics of every sequence, answers of every length included
    cal = build(spec, dense, tok, 2 * (FUNCS + 1), seq_len=256, batch_size=4)
    assert cal.ragged and len({b.shape[1] for b in cal.batches}) > 2
    norms = _norms(dense, cal.batches)
    adapter = adapter_for(model)
    for i, (layer, ref) in enumerate(zip(adapter.layers(model), adapter.layers(dense))):
        pruned, original = adapter.linears(layer), adapter.linears(ref)
        for name, lin in pruned.items():
            w = original[name].weight.double()
            score = w.abs() * norms[f"layers.{i}.{name}"][None, :]
            k = w.shape[1] // 2
            expect = torch.ones_like(w, dtype=torch.bool)
            expect.scatter_(1, score.argsort(1)[:, :k], False)
            assert torch.equal(lin.weight != 0, expect), f"layers.{i}.{name}"
