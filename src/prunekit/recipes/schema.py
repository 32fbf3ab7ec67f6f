"""Recipe files: parse and validate a YAML recipe completely before any model is loaded.

    model: qwen2.5-coder-0.5b
    calibration: {source: python, samples: 64, seq_len: 512, seed: 0}
    steps:
      - search_plan: {file: runs/search/plan.json}  # a `prunekit search` plan: first if given
      - vocabulary: {corpus: python}
      - depth: {remove: 4, criterion: kl, source: answered:python}  # any step takes a source:
      # a corpus, instruct:CORPUS, answered:CORPUS, a path, or a mixture (python,answered:python)
      - width: {ffn_keep: 0.9, criterion: activation}
      - structured: {heads: 0.25, ffn: 0.25, importance: fused, ratios: adaptive}
      - unstructured: {method: wanda, sparsity: 0.5, allocation: owl, allocation_options: {lambda: 0.08},
                       forward_dtype: auto, stream: pruned}
    evaluate: {perplexity: [python], humaneval: true, speed: true}
    export: {gguf: [q8_0, f16]}  # OUT/<name>-<quant>.gguf each, as `prunekit export` writes it

Every problem is reported as one line naming the key and listing what is valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunekit.config import Options, Registry, Surface
from prunekit.config.calibration import CalibrationOptions
from prunekit.config.depth import DepthConfig
from prunekit.config.export import ExportOptions
from prunekit.config.load import LoadOptions
from prunekit.config.prune import PruneConfig
from prunekit.config.search_plan import SearchPlanConfig
from prunekit.config.structured import StructuredConfig
from prunekit.config.vocabulary import VocabularyConfig
from prunekit.config.width import WidthConfig
from prunekit.errors import PrunekitError
from prunekit.recovery.config import RecoverStepConfig

TOP_KEYS = (
    "model",
    "dtype",
    "device",
    "trust_remote_code",
    "calibration",
    "steps",
    "evaluate",
    "export",
    "output",
)
CALIBRATION_DEFAULTS = CalibrationOptions.defaults(Surface.RECIPE)
EVALUATE_DEFAULTS = {
    "perplexity": [],
    "humaneval": False,
    "speed": False,
    "before": True,
    "ppl_seq_len": 512,
    "ppl_tokens": 32768,
    "ppl_batch_size": 4,
}
HUMANEVAL_KEYS = (
    "limit",
    "max_new_tokens",
    "batch_size",
)  # `humaneval: true` or a mapping of these
SPEED_KEYS = ("prompt_len", "decode_steps", "repeats")
# per-step override of the calibration data and size (e.g. depth scored on instruct:python);
# seed and batch_size are the recipe's
_WINDOWS = {"source": None, "samples": None, "seq_len": None}


@dataclass(frozen=True)
class StepSpec:
    """One recipe step: its options model (`config`: keys, defaults, bounds and checks in one
    class, the same its CLI command and API function take).

    Adding a step = one `StepSpec` in `STEPS` here and a method of the same name on the runner.
    """

    name: str
    config: type[Options]
    structural: bool = True  # changes shapes, so it must come before 'unstructured'


@dataclass
class Step:
    name: str
    options: dict[str, Any]  # the step's values by key (what the report records)
    config: Options  # the validated model


@dataclass
class Recipe:
    model: str
    steps: list[Step]
    dtype: str = "float32"
    device: str = "cpu"
    trust_remote_code: bool = False
    calibration: dict[str, Any] = field(default_factory=lambda: dict(CALIBRATION_DEFAULTS))
    evaluate: dict[str, Any] = field(default_factory=lambda: dict(EVALUATE_DEFAULTS))
    export: ExportOptions = field(default_factory=ExportOptions)
    output: str | None = None
    raw: dict = field(default_factory=dict)


RECIPE = Surface.RECIPE


def _fail(where: str, msg: str) -> None:
    raise PrunekitError(f"recipe {where}: {msg}")


def _parsed(where: str, config: type[Options], data: dict):
    """`data` (recipe keys) as a validated `config`, or one line naming `where`."""
    try:
        return config.parse(data, RECIPE)
    except PrunekitError as exc:
        _fail(where, str(exc))


def _known(where: str, given: dict, valid) -> None:
    for key in given:
        if key not in valid:
            _fail(where, f"unknown key '{key}'; valid keys: {', '.join(valid)}")


def _int(where: str, key: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(where, f"{key} must be a whole number ≥ {minimum}, got {value!r}")
    return value


def _bool(where: str, key: str, value) -> bool:
    if not isinstance(value, bool):
        _fail(where, f"{key} must be true or false, got {value!r}")
    return value


def _mapping(where: str, value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(where, f"{what} must be a mapping of key: value, got {type(value).__name__}")
    return value


def _export(given) -> ExportOptions:
    """The `export:` key (a single quant may stand for a list of one)."""
    if given is None:
        return ExportOptions()
    if not isinstance(given, dict):
        _fail("export", f"must be a mapping like {{gguf: [q8_0, f16]}}, got {given!r}")
    if isinstance(given.get("gguf"), str):
        given = {**given, "gguf": [given["gguf"]]}
    return _parsed("export", ExportOptions, given)


def _step(index: int, item, calibration: dict) -> Step:
    where = f"step {index}"
    if isinstance(item, str):
        item = {item: {}}
    if not isinstance(item, dict) or len(item) != 1:
        _fail(where, "each step is one mapping like '- depth: {remove: 2}'")
    name, options = next(iter(item.items()))
    if name not in STEPS:
        _fail(where, f"unknown step '{name}'; valid steps: {', '.join(STEPS)}")
    spec = STEPS[name]
    where = f"step {index} ({name})"
    options = _mapping(where, options, "its options")
    return _config_step(where, name, spec.config, options, calibration)


def _config_step(
    where: str, name: str, config: type[Options], options: dict, calibration: dict
) -> Step:
    """A step validated by its options model; a calibrated one (a `CalibrationOptions`) takes
    the windows `source`/`samples`/`seq_len`, the recipe's calibration filling what it does not
    set. Its report options: the model's own values, then the windows as given."""
    calibrated = issubclass(config, CalibrationOptions)
    windows = list(_WINDOWS) if calibrated else []
    own = [k for k in config.keys(Surface.RECIPE) if not (calibrated and k in CALIBRATION_DEFAULTS)]
    _known(where, options, [*own, *windows])
    keys = config.keys(Surface.RECIPE)  # a None the field cannot take means "the default"
    given = {k: v for k, v in options.items() if v is not None or config.optional(keys[k])}
    base = calibration if calibrated else {}
    try:
        cfg = config.parse({**base, **given}, Surface.RECIPE)
    except PrunekitError as exc:
        _fail(where, str(exc))
    values = cfg.dump(Surface.RECIPE)
    return Step(name, {k: values[k] for k in own} | {k: options.get(k) for k in windows}, cfg)


def _parts(where: str, source: str) -> None:
    """A calibration spec's parts parse (no empty spec, no part named twice)."""
    from prunekit.calibration.sets import parse_spec

    try:
        parse_spec(source)
    except PrunekitError as exc:
        _fail(where, str(exc))


def _check_answered(where: str, step: Step, calibration: str) -> None:
    """Steps that cannot read an `answered:` part (of their own source or the recipe's): depth
    with last_token (answers are weighted per position) and a vocabulary without its own corpus
    (answers are generated, not a corpus); NeuroAL's is `PruneConfig`'s own check."""
    from prunekit.calibration.sets import has_answered

    if not has_answered(step.options.get("source") or calibration):
        return
    if step.name == "depth" and step.options["last_token"]:
        _fail(
            where,
            "answered:CORPUS (weighted on the model's own answers) does not go with last_token; "
            "drop last_token or give this step a corpus or instruct:CORPUS",
        )
    if step.name == "vocabulary" and step.options["corpus"] is None:
        _fail(where, "give it a corpus: the calibration source's answered part is not a corpus")


STEPS: Registry[StepSpec] = Registry(
    "step",
    (
        StepSpec("vocabulary", VocabularyConfig),
        StepSpec("depth", DepthConfig),
        StepSpec("width", WidthConfig),
        StepSpec("structured", StructuredConfig),
        StepSpec("unstructured", PruneConfig, structural=False),
        StepSpec("recover", RecoverStepConfig, structural=False),
        StepSpec("search_plan", SearchPlanConfig),  # a `prunekit search` plan, rebuilt
    ),
)
STRUCTURAL = tuple(name for name, spec in STEPS.items() if spec.structural)


def _order(steps: list[Step]) -> None:
    seen: dict[str, int] = {}
    for i, step in enumerate(steps, 1):
        if step.name in seen:
            _fail(
                f"step {i} ({step.name})",
                f"'{step.name}' already appears as step {seen[step.name]}; give each step once",
            )
        seen[step.name] = i
    if "recover" in seen and seen["recover"] != len(steps):
        _fail(
            f"step {seen['recover']} (recover)",
            "recover trains what the steps before it pruned; make it the last step",
        )
    first = next((s for s in steps if s.name in STRUCTURAL), None)
    if "search_plan" in seen and first.name != "search_plan":
        _fail(
            f"step {seen['search_plan']} (search_plan)",
            f"search_plan must be the first structural step (its levels index the dense model's "
            f"layers and its calibration is the search's); move it before '{first.name}'",
        )
    if "unstructured" in seen:
        late = [s for s in STRUCTURAL if seen.get(s, 0) > seen["unstructured"]]
        if late:
            _fail(
                f"step {seen[late[0]]} ({late[0]})",
                "structural steps must come before 'unstructured' (they would score zeroed weights "
                "and slice away the sparsity pattern); move it earlier",
            )


def validate(data) -> Recipe:
    """A checked Recipe from parsed YAML (a dict); PrunekitError on the first problem."""
    if not isinstance(data, dict):
        _fail("file", "the top level must be a mapping with at least 'model' and 'steps'")
    _known("top level", data, TOP_KEYS)
    load = _parsed(
        "top level", LoadOptions, {k: data[k] for k in LoadOptions.keys(RECIPE) if k in data}
    )
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        _fail("top level", "'steps' must be a non-empty list, e.g. '- depth: {remove: 2}'")
    given = _mapping("calibration", data.get("calibration"), "calibration")
    calib = _parsed("calibration", CalibrationOptions, given).dump(RECIPE)
    parsed = [_step(i, item, calib) for i, item in enumerate(steps, 1)]
    _order(parsed)
    for i, step in enumerate(parsed, 1):
        _check_answered(f"step {i} ({step.name})", step, calib["source"])
    ev = _mapping("evaluate", data.get("evaluate"), "evaluate")
    _known("evaluate", ev, EVALUATE_DEFAULTS)
    ev = {**EVALUATE_DEFAULTS, **ev}
    if isinstance(ev["perplexity"], str):
        ev["perplexity"] = [ev["perplexity"]]
    if not isinstance(ev["perplexity"], list) or not all(
        isinstance(p, str) for p in ev["perplexity"]
    ):
        _fail("evaluate", "perplexity must be a list of corpora or paths, e.g. [python]")
    _bool("evaluate", "before", ev["before"])
    for key, valid in (("humaneval", HUMANEVAL_KEYS), ("speed", SPEED_KEYS)):
        if isinstance(ev[key], dict):
            _known(f"evaluate.{key}", ev[key], valid)
            for k, v in ev[key].items():
                _int(f"evaluate.{key}", k, v)
        else:
            _bool("evaluate", key, ev[key])
    for key in ("ppl_seq_len", "ppl_tokens", "ppl_batch_size"):
        _int("evaluate", key, ev[key], 2 if key == "ppl_seq_len" else 1)
    export = _export(data.get("export"))
    output = data.get("output")
    if output is not None and not isinstance(output, str):
        _fail("top level", f"output must be a folder path, got {output!r}")
    return Recipe(
        model=load.model,
        steps=parsed,
        dtype=load.dtype,
        device=load.device,
        trust_remote_code=load.trust_remote_code,
        calibration=calib,
        evaluate=ev,
        export=export,
        output=output,
        raw=data,
    )


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise PrunekitError(f"recipe '{path}' does not exist; give the path of a .yaml recipe")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise PrunekitError(
            f"recipe '{path}' is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PrunekitError(f"recipe '{path}' is not valid YAML{where}; fix its syntax") from exc
    return validate(data)
