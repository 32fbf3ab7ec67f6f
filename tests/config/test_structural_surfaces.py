"""The structural steps accept and reject the same values with the same message on every surface
they have: `prunekit structured` flags vs the recipe's `structured` step (both StructuredConfig),
and `prunekit.depth` / `prunekit.width` keywords vs the recipe's `depth` / `width` steps."""

from __future__ import annotations

import re

import pytest
import yaml

import prunekit
from prunekit.cli import build_parser
from prunekit.cli.common import check_model_args
from prunekit.cli.structured_cmd import config_from_args
from prunekit.errors import PrunekitError
from prunekit.recipes.schema import validate

# written out here, not asked of the code under test
CALIBRATION = {"--calib-samples": "samples", "--seq-len": "seq_len", "--calib": "source"}
CALIBRATION |= {"--batch-size": "batch_size", "--seed": "seed"}
API_TO_RECIPE = {"calib": "source", "calib_samples": "samples"}


def _recipe(step_name: str, step: dict, calibration: dict | None = None) -> str | None:
    """None if the recipe validates, else its message after the `recipe WHERE:` prefix."""
    data = {"model": "some-model", "calibration": calibration or {}, "steps": [{step_name: step}]}
    try:
        validate(data)
    except PrunekitError as exc:
        return re.sub(rf"^recipe (step 1 \({step_name}\)|calibration|top level): ", "", str(exc))
    return None


# ---- prunekit structured vs the recipe's structured step ----

STRUCTURED = [
    *(["--heads", v] for v in ("0", "0.25", "0.999", "1", "1.0", "-0.1")),
    *(["--ffn", v] for v in ("0.3", "1.5", "-0.5")),
    *(["--target", v] for v in ("0.2", "1", "nan")),
    ["--heads", "0.2", "--target", "0.2"],
    ["--ffn", "0.2", "--target", "0.2"],
    ["--heads", "0", "--ffn", "0"],
    [],
    *(["--ffn", "0.2", "--importance", v] for v in ("fused", "taylor_vector", "param_mix", "l1")),
    *(["--ffn", "0.2", "--ratios", v] for v in ("adaptive", "stable", "uniform", "skip", "owl")),
    *(
        ["--ffn", "0.2", flag, v]
        for flag, vs in (
            ("--skip-first", ("-1", "0", "5")),
            ("--skip-last", ("-1", "0")),
            ("--max-ratio", ("0", "0.5", "1", "1.01")),
            ("--multiple", ("0", "1", "64")),
            ("--min-channels", ("0", "1")),
            ("--refit-damp", ("-1", "0", "0.1", "inf")),
            ("--calib-samples", ("0", "1")),
            ("--seq-len", ("1", "2")),
            ("--batch-size", ("0",)),
            ("--seed", ("-1",)),
            ("--calib", (",,", "python,python", "python,answered:python")),
        )
        for v in vs
    ),
    ["--ffn", "0.2", "--refit"],
    ["--ffn", "0.2", "--no-refit"],
]


def _structured_cli(flags: list[str]) -> str | None:
    args = build_parser().parse_args(["structured", "some-model", "-o", "out", *flags])
    try:
        check_model_args(args)
        config_from_args(args)
    except PrunekitError as exc:
        return str(exc)
    return None


def _structured_recipe(flags: list[str]) -> str | None:
    step, calibration = {}, {}
    rest = list(flags)
    while rest:
        flag = rest.pop(0)
        if flag in ("--refit", "--no-refit"):
            step["refit"] = flag == "--refit"
            continue
        text = rest.pop(0)
        value = text if flag == "--calib" else yaml.safe_load(text)
        if flag == "--refit-damp" and text == "inf":
            value = float("inf")
        if flag == "--target" and text == "nan":
            value = float("nan")
        if flag in CALIBRATION:
            calibration[CALIBRATION[flag]] = value
        else:
            step[flag.removeprefix("--").replace("-", "_")] = value
    return _recipe("structured", step, calibration)


def _as_recipe_names(message: str) -> str:
    names = {flag: key for flag, key in CALIBRATION.items()}
    return re.sub(r"--[a-z-]+", lambda m: names.get(m[0], m[0][2:].replace("-", "_")), message)


@pytest.mark.parametrize("flags", STRUCTURED, ids=" ".join)
def test_structured_cli_and_recipe_accept_and_reject_alike(flags):
    cli, recipe = _structured_cli(flags), _structured_recipe(flags)
    assert (cli is None) == (recipe is None), (cli, recipe)
    if cli is not None:
        assert _as_recipe_names(cli) == recipe
        assert "\n" not in cli


def test_structured_cases_cover_both_outcomes():
    accepted = [_structured_cli(flags) is None for flags in STRUCTURED]
    assert 10 < sum(accepted) < len(STRUCTURED) - 10


# ---- prunekit.depth / prunekit.width vs the recipe's depth / width steps ----


class _Accepted(Exception):
    """Raised by the stand-in model the moment the API, its options accepted, first uses it."""


class _Model:
    def __getattr__(self, name):
        raise _Accepted


def _api(fn, options: dict) -> str | None:
    try:
        fn(_Model(), _Model(), progress=False, **options)
    except _Accepted:
        return None
    except PrunekitError as exc:
        return str(exc)
    raise AssertionError("the API neither used the model nor refused the options")


def _api_vs_recipe(step_name: str, fn, options: dict):
    """The API's verdict and message (keys spelled as a recipe spells them) and the recipe's."""
    api = _api(fn, options)
    step = {API_TO_RECIPE.get(k, k): v for k, v in options.items()}
    recipe = _recipe(step_name, step)
    if api is not None:
        api = re.sub(r"\b(calib_samples|calib)\b", lambda m: API_TO_RECIPE[m[0]], api)
    return api, recipe


DEPTH = [
    *({"remove": v} for v in (0, 1, 3, 1.5, True, "x")),
    *({"layers": v} for v in ([], [1, 1], [-1], [True], 3, [2], [0, 2])),
    {"remove": 1, "layers": [2]},
    {},
    {"criterion": "kl"},
    *({"remove": 1, "criterion": v} for v in ("kl", "cosine", "angular", "l2")),
    *({"remove": 1, "selection": v} for v in ("greedy", "run", "best")),
    {"layers": [1], "selection": "run"},
    {"layers": [1], "repair": "linear"},
    *({"remove": 1, "repair": v} for v in ("none", "linear", "cubic")),
    *({"remove": 1, "ridge": v} for v in (0, 0.5, -1, float("inf"), "x")),
    *({"remove": 1, "prior": v} for v in ("zero", "identity", "one")),
    *({"remove": 1, "last_token": v} for v in (True, "yes")),
    *({"remove": 1, "calib_samples": v} for v in (0, 8)),
    *({"remove": 1, "seq_len": v} for v in (1, 64)),
    *({"remove": 1, "calib": v} for v in (",,", "python,python", "instruct:python")),
    {"remove": 1, "depth": 2},
]

WIDTH = [
    *({"ffn_keep": v} for v in (0, 0.5, 1, 1.5, "x", True)),
    {},
    *({"ffn_keep": 0.5, "criterion": v} for v in ("activation", "output", "taylor", "random")),
    *({"ffn_keep": 0.5, "multiple": v} for v in (0, 1, 64, True, 2.5)),
    *({"ffn_keep": 0.5, "refit": v} for v in (True, False, "yes", 1)),
    *({"ffn_keep": 0.5, "refit_damp": v} for v in (-0.1, 0, 0.3, float("nan"))),
    *({"ffn_keep": 0.5, "seq_len": v} for v in (1, 2)),
    {"ffn_keep": 0.5, "keep": 0.5},
]


@pytest.mark.parametrize("options", DEPTH, ids=str)
def test_depth_api_and_recipe_accept_and_reject_alike(options):
    api, recipe = _api_vs_recipe("depth", prunekit.depth, options)
    _alike(api, recipe)


@pytest.mark.parametrize("options", WIDTH, ids=str)
def test_width_api_and_recipe_accept_and_reject_alike(options):
    api, recipe = _api_vs_recipe("width", prunekit.width, options)
    _alike(api, recipe)


def _alike(api, recipe):
    assert (api is None) == (recipe is None), (api, recipe)
    if api is None:
        return
    unknown = re.match(r"unknown (option|key) '(\w+)'", api or "")
    if unknown:  # the API lists keywords, the recipe keys: the same key named unknown
        assert re.match(rf"unknown key '{unknown[2]}'", recipe), (api, recipe)
    else:
        assert api == recipe
    assert "\n" not in api


def test_depth_and_width_cases_cover_both_outcomes():
    for fn, name, cases in ((prunekit.depth, "depth", DEPTH), (prunekit.width, "width", WIDTH)):
        accepted = [_api(fn, options) is None for options in cases]
        assert 5 < sum(accepted) < len(cases) - 10, name
