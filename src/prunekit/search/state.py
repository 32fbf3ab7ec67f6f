"""The search state: everything needed to continue after an interruption, written whole to a
temporary file and renamed over the old one after every generation (never half-written)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prunekit.errors import PrunekitError

STATE_FILE = "search_state.json"
VERSION = 1


@dataclass
class Evaluated:
    """One candidate as far as selection took it: its fitness at each stage it reached."""

    genome: list[int]
    cost: int
    generation: int
    stages: list[float] = field(default_factory=list)
    full: bool = False  # reached the last stage: stages[-1] is its fitness on every token


@dataclass
class SearchState:
    fingerprint: dict
    generation: int = 0
    parent: list[int] = field(default_factory=list)
    parent_fitness: float | None = None
    best_trace: list[float] = field(default_factory=list)  # parent fitness after each generation
    evaluated: list[Evaluated] = field(default_factory=list)
    evaluations: int = 0  # candidate scorings (any stage)
    token_evaluations: int = 0  # scored tokens summed over every scoring
    elapsed_s: float = 0.0  # wall time of earlier sessions
    cpu_s: float = 0.0
    stop_reason: str | None = None

    def to_dict(self) -> dict:
        return {"version": VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> SearchState:
        data = dict(data)
        data.pop("version", None)
        data["evaluated"] = [Evaluated(**e) for e in data.get("evaluated", [])]
        return cls(**data)


def save_state(folder: Path, state: SearchState) -> Path:
    """Write `folder`/search_state.json atomically (temporary file, fsync, rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STATE_FILE
    tmp = folder / f".{STATE_FILE}.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(state.to_dict(), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def load_state(folder: Path, fingerprint: dict) -> SearchState:
    """The saved state, refused when it was made with other settings or cannot be read."""
    path = folder / STATE_FILE
    if not path.exists():
        raise PrunekitError(f"--resume: no search state in '{folder}'; run without --resume")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        state = SearchState.from_dict(data)
    except (OSError, ValueError, TypeError) as exc:
        raise PrunekitError(f"--resume: '{path}' cannot be read ({exc}); remove it") from None
    if data.get("version") != VERSION:
        raise PrunekitError(f"--resume: '{path}' is from another version; remove it")
    saved = json.loads(json.dumps(state.fingerprint))
    fingerprint = json.loads(json.dumps(fingerprint))  # tuples as the file holds them: lists
    if saved != fingerprint:
        changed = sorted(k for k in {**saved, **fingerprint} if saved.get(k) != fingerprint.get(k))
        raise PrunekitError(
            f"--resume: the state in '{folder}' was made with other settings ({', '.join(changed)}"
            "); give the same options or start a new search"
        )
    return state
