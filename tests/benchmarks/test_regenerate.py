"""benchmarks/regenerate.py: every committed table has exactly one entry that says how it is made."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest
from script_helpers import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "regenerate.py"


regen = load_script("regenerate")


def _claims(path: Path) -> list[str]:
    """Names of the entries whose outputs match a top-level file or folder of results/."""
    name = path.name + ("/" if path.is_dir() else "")
    return [e.name for e in regen.ENTRIES if any(fnmatch(name, p) for p in e.outputs)]


def _results() -> list[Path]:
    """Top-level results, without the archives made before the sampler fix."""
    return [p for p in sorted(regen.RESULTS.iterdir()) if "_before_sampler_fix" not in p.name]


def test_every_result_is_claimed_by_exactly_one_entry():
    assert any(p.suffix == ".md" for p in _results())
    bad = {p.name: _claims(p) for p in _results() if len(_claims(p)) != 1}
    assert not bad, f"results without exactly one regenerate entry: {bad}"


def test_names_unique_and_scripts_exist():
    assert len(regen.BY_NAME) == len(regen.ENTRIES)
    for e in regen.ENTRIES:
        assert e.scripts or any(s.startswith("prunekit ") for s in e.steps), e.name
        assert all((ROOT / s).is_file() for s in e.scripts), e.name
        assert e.minutes > 0 and e.outputs


def test_recorded_commands_are_the_entries_steps():
    """Where a result JSON records the argv it was made with, its entry runs exactly that."""
    for path in regen.RESULTS.glob("*.json"):
        if "_before_sampler_fix" in path.name:
            continue
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            continue
        recorded = [data.get("meta", {}).get("command"), data.get("command")]
        recorded.append(data.get("speed_command"))
        (entry,) = _claims(path)
        steps = regen.BY_NAME[entry].steps
        for cmd in filter(None, recorded):
            assert f"python {cmd}" in steps, (path.name, cmd)


def test_recorded_cli_commands_of_result_folders_are_the_entries_steps():
    """A result folder's report.json records the prunekit command that made it; its entry runs it,
    or runs a benchmark script whose JSON output records that it ran it."""
    checked = 0
    for report in regen.RESULTS.glob("*/report.json"):
        cmd = json.loads(report.read_text()).get("command", "")
        if not cmd.split(" ")[0].endswith("/prunekit"):
            continue
        (entry,) = _claims(report.parent)
        ran, e = "prunekit " + cmd.partition(" ")[2], regen.BY_NAME[entry]
        records = [regen.RESULTS / o for o in e.outputs if o.endswith(".json")]
        by_script = any(json.dumps(ran) in r.read_text() for r in records if r.is_file())
        assert ran in e.steps or by_script, report
        checked += 1
    assert checked


def test_dry_run_all_prints_one_flocked_command_per_entry():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--run", "all"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert len(out) == len(regen.ENTRIES)
    assert all(line.startswith(f"flock {regen.LOCK} ") for line in out)
    for line, e in zip(out, regen.ENTRIES):
        assert all(s in line for s in e.scripts)


def test_list_names_every_entry_and_total():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--list"], capture_output=True, text=True, check=True
    ).stdout
    assert all(e.name in out for e in regen.ENTRIES)
    assert "estimate" in out


@pytest.mark.skipif(shutil.which("flock") is None, reason="needs the flock program")
def test_run_stops_at_first_failure_and_skips_missing_peer(tmp_path, monkeypatch, capsys):
    fail = regen.Entry("fails", ("false",), ("x.md",), 1)
    peer = regen.Entry("peer", ("false",), ("y.md",), 1, peer=True)
    after = regen.Entry("after", (f"touch {tmp_path / 'ran'}",), ("z.md",), 1)
    monkeypatch.setattr(regen, "LOCK", str(tmp_path / "lock"))
    monkeypatch.setattr(regen, "PEER_PYTHON", str(tmp_path / "no-peer-python"))
    monkeypatch.setattr(regen, "BY_NAME", {e.name: e for e in (fail, peer, after)})
    assert regen.run(["peer", "after"], dry_run=False) == 0
    assert (tmp_path / "ran").exists()
    assert regen.run(["fails", "after"], dry_run=False) != 0
    out = capsys.readouterr().out
    assert "skipping peer" in out
    assert "fails failed (exit 1); stopped; not run: after" in out
