"""Issue 31, item 7 (and the model folder as -o, item 10): odd input is one line, exit 2, before
the model loads or anything is generated, and nothing is written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from prunekit.cli import main
from prunekit.errors import PrunekitError


@pytest.fixture
def no_model_load(monkeypatch):
    def tripwire(*args, **kwargs):
        raise AssertionError("the model was loaded before the bad input was refused")

    monkeypatch.setattr("prunekit.models.loading.load_model", tripwire)


def one_line_error(capsys, *argv: str) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("prunekit: error")]
    assert len(lines) == 1, err
    return lines[0]


def _entries(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


PRUNE = ["prune", "{model}", "--sparsity", "0.5", "--calib-samples", "4", "--seq-len", "32"]


def _prune(model: Path, out: Path) -> list[str]:
    return [a.replace("{model}", str(model)) for a in PRUNE] + ["-o", str(out)]


def test_output_that_is_a_dangling_symlink(capsys, tmp_path, tiny_model_dir, no_model_load):
    out = tmp_path / "out"
    out.symlink_to(tmp_path / "nowhere")
    err = one_line_error(capsys, *_prune(tiny_model_dir, out))
    assert "is a dangling symlink" in err and str(out) in err
    assert _entries(tmp_path) == ["out"]  # no hidden partial beside it


def test_output_inside_a_symlink_loop(capsys, tmp_path, tiny_model_dir, no_model_load):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for out in (tmp_path / "a", tmp_path / "a" / "run"):
        err = one_line_error(capsys, *_prune(tiny_model_dir, out), "--force")
        assert "symlink loop" in err
    assert _entries(tmp_path) == ["a", "b"]


def test_output_below_a_file(capsys, tmp_path, tiny_model_dir, no_model_load):
    (tmp_path / "file").write_text("x")
    err = one_line_error(capsys, *_prune(tiny_model_dir, tmp_path / "file" / "run"))
    assert "is a file, not a folder" in err


def test_eval_report_into_a_missing_folder(capsys, tmp_path, tiny_model_dir, no_model_load):
    report = tmp_path / "missing" / "report.json"
    err = one_line_error(
        capsys, "eval", str(tiny_model_dir), "--ppl", "python", "--report", str(report)
    )
    assert "does not exist" in err and not (tmp_path / "missing").exists()
    err = one_line_error(
        capsys, "eval", str(tiny_model_dir), "--ppl", "python", "--report", str(tmp_path)
    )
    assert "is a folder" in err


def test_eval_report_that_cannot_be_written_at_the_end_is_kept(tmp_path, monkeypatch):
    from prunekit.cli.eval_cmd import _write_report

    target = tmp_path / "report.json"

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(PrunekitError) as err:
        _write_report(target, {"evaluation": {"perplexity": {"python": {"ppl": 3.0}}}})
    monkeypatch.undo()
    rescued = Path(str(err.value).split("saved to '")[1].split("'")[0])
    assert "No space left on device" in str(err.value) and not target.exists()
    assert json.loads(rescued.read_text())["evaluation"]["perplexity"]["python"]["ppl"] == 3.0
    rescued.unlink()


HE = ["--humaneval", "--limit", "1"]


def test_humaneval_jsonl_on_a_read_only_place(capsys, tiny_model_dir, no_model_load):
    err = one_line_error(
        capsys, "eval", str(tiny_model_dir), *HE, "--humaneval-jsonl", "/sys/prunekit/p.jsonl"
    )
    assert "--humaneval-jsonl" in err and "not writable" in err


def test_humaneval_jsonl_that_is_a_folder(capsys, tmp_path, tiny_model_dir, no_model_load):
    err = one_line_error(
        capsys, "eval", str(tiny_model_dir), *HE, "--humaneval-jsonl", str(tmp_path)
    )
    assert "--humaneval-jsonl" in err and "is a folder" in err


def test_negative_exec_workers(capsys, tiny_model_dir, no_model_load):
    err = one_line_error(capsys, "eval", str(tiny_model_dir), *HE, "--exec-workers", "-3")
    assert "--exec-workers must be at least 1, got -3" in err


def test_run_many_refuses_bad_worker_counts():
    from prunekit.evaluation.sandbox import run_many

    for bad in (0, -3):
        with pytest.raises(PrunekitError, match="--exec-workers must be at least 1"):
            run_many(["x = 1"], workers=bad)


@pytest.fixture
def same_uid(monkeypatch):
    """Pretend candidates would run as our own uid (no namespaces, not root)."""
    import prunekit.evaluation.sandbox as sandbox

    real = sandbox.sandbox_identity
    monkeypatch.setattr(sandbox, "sandbox_identity", lambda: {**real(), "same_uid": True})
    monkeypatch.delenv(sandbox.UNSAFE_SAME_UID, raising=False)


def test_eval_refuses_same_uid_scoring_before_loading(
    capsys, tiny_model_dir, same_uid, no_model_load
):
    err = one_line_error(capsys, "eval", str(tiny_model_dir), *HE)
    assert "PRUNEKIT_UNSAFE_SAME_UID_SANDBOX=1" in err


def test_the_unsafe_flag_opts_in_for_that_run_only(capsys, tiny_model_dir, same_uid, no_model_load):
    with pytest.raises(AssertionError, match="the model was loaded"):  # past the refusal
        main(["eval", str(tiny_model_dir), *HE, "--unsafe-same-uid-sandbox"])
    assert "PRUNEKIT_UNSAFE_SAME_UID_SANDBOX" not in os.environ
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "--unsafe-same-uid-sandbox" in capsys.readouterr().out


def test_humaneval_and_teacher_answers_refuse_before_generating(same_uid, monkeypatch):
    from prunekit.data.instruct import Instruction
    from prunekit.evaluation.humaneval import run_humaneval
    from prunekit.recovery.answers import AnswerSettings, generate_answers

    def tripwire(*args, **kwargs):
        raise AssertionError("generated before refusing")

    monkeypatch.setattr("prunekit.evaluation.generation.generate_batched", tripwire)

    class Tok:
        chat_template = None

    with pytest.raises(PrunekitError, match="PRUNEKIT_UNSAFE_SAME_UID_SANDBOX=1"):
        run_humaneval(None, Tok(), mode="completion", limit=1, progress=False)
    fields = Instruction.__dataclass_fields__
    ins = Instruction(**{k: "x:f" if k == "source" else "def f():" for k in fields})
    with pytest.raises(PrunekitError, match="PRUNEKIT_UNSAFE_SAME_UID_SANDBOX=1"):
        generate_answers([ins], None, Tok(), AnswerSettings(), "cpu", progress=False)


@pytest.mark.parametrize(
    "content",
    [b'{"a": "\xff"}', json.dumps({"evaluation": {"speed": {"prefill": {"tokens_per_s": "x"}}}})],
)
def test_compare_odd_reports(capsys, tmp_path, content):
    good, bad = tmp_path / "good", tmp_path / "bad"
    for run in (good, bad):
        run.mkdir()
    (good / "report.json").write_text(json.dumps({"model": {"name": "m"}}))
    (bad / "report.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    err = one_line_error(capsys, "compare", str(good), str(bad), "--no-plot")
    assert str(bad / "report.json") in err


@pytest.mark.parametrize(
    ("flag", "where"), [("--plot", "{tmp}"), ("--markdown", "{tmp}"), ("--plot", "/sys/x/p.png")]
)
def test_compare_outputs_checked_first(capsys, tmp_path, flag, where):
    good = tmp_path / "good"
    good.mkdir()
    (good / "report.json").write_text(json.dumps({"model": {"name": "m"}}))
    err = one_line_error(capsys, "compare", str(good), flag, where.replace("{tmp}", str(tmp_path)))
    assert flag in err
    assert _entries(tmp_path) == ["good"]


@pytest.mark.parametrize(
    "content",
    [
        '{"x": ',
        "[1]",
        '{"submodels": 3}',
        '{"submodels": {"config": {"languages": "python"}}, "model": {"id": "m"}}',
        '{"submodels": {"config": {"languages": ["python"]}}}',
    ],
)
def test_materialize_odd_run_reports(capsys, tmp_path, content, no_model_load):
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text(content)
    argv = ["submodels", "materialize", str(run), "--language", "python", "--sparsity", "0.5"]
    err = one_line_error(capsys, *argv, "-o", str(tmp_path / "out"))
    assert "report.json" in err and not (tmp_path / "out").exists()


def test_materialize_unreadable_masks(capsys, tmp_path, no_model_load):
    run = tmp_path / "run"
    (run / "masks").mkdir(parents=True)
    cfg = {"languages": ["python"], "method": "wanda", "pattern": "unstructured"}
    cfg |= {"calib_samples": 4, "seq_len": 32, "seed": 0}
    report = {"model": {"id": "m"}, "submodels": {"config": cfg, "data": {}}}
    (run / "report.json").write_text(json.dumps(report))
    (run / "masks" / "python_s50.safetensors").write_bytes(b"\x00" * 7)
    from prunekit.submodels.sweep import sparsity_tag

    (run / "masks" / "python_s50.safetensors").rename(
        run / "masks" / f"python_{sparsity_tag(0.5)}.safetensors"
    )
    argv = ["submodels", "materialize", str(run), "--language", "python", "--sparsity", "0.5"]
    err = one_line_error(capsys, *argv, "-o", str(tmp_path / "out"))
    assert "not a readable mask file" in err


def test_the_model_folder_is_never_the_output(capsys, tmp_path, tiny_model_dir, no_model_load):
    """--force or not, -o equal to (or holding) the model folder is refused before loading."""
    for out in (tiny_model_dir, tiny_model_dir.parent):
        err = one_line_error(
            capsys,
            "recover",
            str(tiny_model_dir),
            "--teacher",
            str(tiny_model_dir),
            "-o",
            str(out),
            "--force",
        )
        assert "would replace the model this run reads" in err


def test_a_loaded_model_folder_is_never_replaced_at_save(tmp_path):
    """Where the early check could not know the model (it loaded later), the save keeps the
    model folder as it is and puts the result beside it."""
    from prunekit.utils import _INPUTS, protect_input, write_output

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    protect_input(model)
    try:
        with pytest.raises(PrunekitError, match="would replace the model this run read") as err:
            write_output(model, lambda d: (d / "result").write_text("new"), force=True)
    finally:
        _INPUTS.discard(model.resolve())
    assert _entries(model) == ["config.json"]
    beside = Path(str(err.value).split("output is in '")[1].rstrip("'"))
    assert (beside / "result").read_text() == "new"


@pytest.mark.parametrize("command", ["prune", "structured", "run"])
def test_prune_structured_run_refuse_the_model_folder_before_loading(
    capsys, tmp_path, tiny_model_dir, no_model_load, command
):
    """The same refusal for the pruning commands, before the model is loaded (no_model_load)."""
    if command == "run":
        recipe = tmp_path / "r.yaml"
        recipe.write_text(f"model: {tiny_model_dir}\nsteps:\n  - depth: {{layers: [1]}}\n")
        argv = ["run", str(recipe)]
    elif command == "prune":
        argv = ["prune", str(tiny_model_dir), "--sparsity", "0.5"]
    else:
        argv = ["structured", str(tiny_model_dir), "--heads", "0.5"]
    err = one_line_error(capsys, *argv, "-o", str(tiny_model_dir), "--force")
    assert "would replace the model this run reads" in err
