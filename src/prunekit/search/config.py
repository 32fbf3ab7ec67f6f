"""`SearchConfig`: the options of `prunekit search` (CLI flags, `prunekit.search(...)` keywords and
the plan file all record these fields)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from prunekit.config.options import Choice, OptionError, Options
from prunekit.errors import PrunekitError

REPAIRS = ("none", "linear")


def _floats(value, what: str, zero: bool = False) -> tuple[float, ...]:
    """'1,0.75' or [1, 0.75] as a tuple of floats in (0, 1] (`zero`: in [0, 1))."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        out = ()
    if not out or not all(0 <= v < 1 if zero else 0 < v <= 1 for v in out):
        span, example = ("[0, 1)", "0,0.3,0.5") if zero else ("(0, 1]", "1,0.75,0.5")
        raise PrunekitError(f"{what} must be numbers in {span} such as {example}; got {value!r}")
    return out


class SearchConfig(Options):
    """EvoPress-style search over per-layer levels (FFN width, head groups, block drop) within a
    parameter or size budget, KL fitness on the held-out answers, multi-stage selection."""

    budget: str = Field(
        description="params=F (of the non-embedding parameters), params=N[K|M|B], size=N[MB|GB] "
        "or decode=Sx (predicted decode speedup over the dense model on this machine, S > 1)"
    )
    vocabulary: str | None = Field(
        None,
        description="first keep only the tokens this corpus uses (e.g. python,text,javascript,"
        "cpp); the search, its budget and the export start from the pruned vocabulary",
    )
    decode_context: int = Field(
        256, ge=1, description="KV-cache tokens of the decode timings (decode= budgets)"
    )
    hours: float = Field(3.0, gt=0, description="wall-clock hours for the whole run (stops early)")
    max_generations: int | None = Field(None, ge=1, description="stop after this many generations")
    offspring: int = Field(8, ge=2, description="children of the parent per generation")
    stages: tuple[float, ...] = Field(
        (0.25, 0.5, 1.0),
        description="selection stages as fractions of the fitness tokens, ascending, ending at 1",
    )
    ffn_levels: tuple[float, ...] = Field(
        (1.0, 0.875, 0.75, 0.625, 0.5), description="MLP channel fractions a layer may keep"
    )
    head_levels: tuple[float, ...] = Field(
        (1.0,), description="kv head-group fractions a layer may keep (1 = heads not searched)"
    )
    sparsity_levels: tuple[float, ...] = Field(
        (0.0,),
        description="unstructured (Wanda) sparsity a layer's Linears may take on top of its "
        "width and heads (0 always included); a params= budget then counts non-zero parameters",
    )
    drop: bool = Field(True, description="a layer may be dropped whole")
    refit: bool = Field(False, description="refit down_proj / o_proj of every level (stored)")
    refit_damp: float = Field(0.3, ge=0, description="refit ridge (structural.refit)")
    repair: Annotated[str, Choice(REPAIRS)] = Field(
        "none", description="linear: fold a depth-repair map for the chosen model's dropped runs"
    )
    multiple: int = Field(64, ge=1, description="MLP widths rounded to this multiple")
    calib: str = Field(
        "answered:python", description="answered:CORPUS: the model's own checked answers"
    )
    calib_samples: int = Field(32, ge=2, description="instructions asked (answers kept vary)")
    seq_len: int = Field(1024, ge=2)
    seed: int = Field(0, ge=0)
    fitness_split: float = Field(
        0.5, gt=0, lt=1, description="share of the answers held out for the fitness"
    )
    kl_topk: int | None = Field(
        None, ge=0, description="dense top-k in the KL (0 exact; default exact when ≤ 1 GiB)"
    )
    cache_mb: int = Field(2048, ge=1, description="built variant modules kept in memory")
    work_dir: str | None = Field(None, description="level database and search state (resume)")
    resume: bool = Field(False, description="continue the search state in work_dir")
    progress: bool = True

    @field_validator("stages", "ffn_levels", "head_levels", "sparsity_levels", mode="before")
    @classmethod
    def _tuples(cls, value, info):
        return _floats(value, info.field_name, zero=info.field_name == "sparsity_levels")

    @field_validator("budget")
    @classmethod
    def _budget(cls, value):
        from prunekit.search.budget import parse_budget

        parse_budget(value)
        return value

    @field_validator("vocabulary")
    @classmethod
    def _vocabulary(cls, value):
        from prunekit.data.sources import resolve_source

        if value is not None:
            try:
                resolve_source(value, "calib")
            except PrunekitError as exc:
                raise OptionError(f"<vocabulary>: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self):
        s = self.stages
        if s[-1] != 1 or any(b <= a for a, b in zip(s, s[1:])):
            raise PrunekitError(f"stages must ascend and end at 1, e.g. 0.25,0.5,1; got {s}")
        if self.resume and not self.work_dir:
            raise PrunekitError("resume needs the work_dir of the interrupted search")
        check_fitness_spec(self.calib)
        self._check_sparsity()
        return self

    def _check_sparsity(self) -> None:
        """Zeros save no bytes in the dense export and no CPU decode time: params= budgets only."""
        from prunekit.search.budget import parse_budget

        kind = parse_budget(self.budget).kind
        if any(self.sparsity_levels) and kind != "params":
            raise OptionError(
                f"<sparsity_levels> {','.join(f'{s:g}' for s in self.sparsity_levels)} with a "
                f"{kind}= budget: zeros in the dense export save no bytes and no decode time; "
                "use a params= budget (it counts non-zero parameters) or drop <sparsity_levels>"
            )

    def fingerprint(self) -> dict:
        """The fields that decide the level database and the search (not time limits);
        `sparsity_levels` only when searched, so dense-only work folders keep their fingerprint."""
        keep = (
            "budget", "vocabulary", "decode_context", "offspring", "stages", "ffn_levels",
            "head_levels", "drop", "refit", "refit_damp", "multiple", "calib", "calib_samples",
            "seq_len", "seed", "fitness_split", "kl_topk",
        )  # fmt: skip
        sparse = ("sparsity_levels",) if any(self.sparsity_levels) else ()
        return {k: getattr(self, k) for k in (*keep, *sparse)}


def check_fitness_spec(spec: str) -> None:
    """The fitness data is the model's own answers (`answered:CORPUS`) and its corpus shares no
    13-gram with HumanEval; one line otherwise, before any model is loaded."""
    from prunekit.calibration.sets import ANSWERS, parse_spec

    for part in parse_spec(spec):
        if part.kind != ANSWERS:
            raise PrunekitError(
                f"search fitness data '{part.text}' is not answered:CORPUS; the fitness is the KL "
                "on the model's own checked answers (e.g. answered:python)"
            )
        from pathlib import Path

        if not Path(part.data).expanduser().exists() and "humaneval" in part.data.lower():
            raise PrunekitError(
                f"search fitness data '{part.text}' names HumanEval: the judge never enters the "
                "search; use a corpus such as answered:python"
            )
        _check_corpus_files(part)


def _check_corpus_files(part) -> None:
    """A path corpus: refuse it when one of its files shares a 13-gram with HumanEval."""
    from pathlib import Path

    from prunekit.data.decontam import humaneval_ngrams, is_contaminated

    path = Path(part.data).expanduser()
    if not path.exists():
        return
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    banned = humaneval_ngrams()
    for file in files[:5000]:
        try:
            text = file.read_text(encoding="utf-8", errors="ignore")
        except OSError:
            continue
        if is_contaminated(text, banned):
            raise PrunekitError(
                f"search fitness data '{part.text}': {file} shares a 13-gram with HumanEval; "
                "the judge must stay out of the search; remove that file or use answered:python"
            )
