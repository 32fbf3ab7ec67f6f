"""`prunekit prune` flags and the recipe's `unstructured` step accept and reject exactly the same
values with the same message (each spelling its own names), because both are PruneConfig."""

from __future__ import annotations

import re

import pytest
import yaml

from prunekit.cli import build_parser
from prunekit.cli.common import check_model_args
from prunekit.cli.prune_cmd import config_from_args
from prunekit.errors import PrunekitError
from prunekit.recipes.schema import validate

# the CLI's flag → the recipe's key, written out here (not asked of the code under test)
FLAG_TO_KEY = {
    "--calib-samples": "samples",
    "--seq-len": "seq_len",
    "--batch-size": "batch_size",
    "--calib": "source",
    "--seed": "seed",
    "--sparsity": "sparsity",
    "--pattern": "pattern",
    "--allocation": "allocation",
    "--forward-dtype": "forward_dtype",
    "--neuroal-samples": "samples",
    "--sparsegpt-blocksize": "blocksize",
    "--sparsegpt-percdamp": "percdamp",
    "--owl-m": "m",
    "--owl-lambda": "lambda",
    "--method": "method",
    "--stream": "stream",
    "--dtype": "dtype",
}
# where each flag lives in a recipe: the step, its allocation/method options, calibration, top
STEP = ("--sparsity", "--pattern", "--method", "--allocation", "--forward-dtype", "--stream")
CALIBRATION = {"--calib-samples": "samples", "--seq-len": "seq_len", "--batch-size": "batch_size"}
CALIBRATION |= {"--seed": "seed", "--calib": "source"}
ALLOCATION = ("--owl-m", "--owl-lambda", "--neuroal-samples", "--neuroal-grid")
ALLOCATION += ("--neuroal-search-method", "--neuroal-dense-reference")
METHOD = ("--sparsegpt-blocksize", "--sparsegpt-percdamp")

CASES = [
    *(["--sparsity", v] for v in ("0", "0.5", "0.999", "1", "1.2", "-0.1")),
    *(
        ["--pattern", p]
        for p in ("unstructured", "2:4", "4:8", "1:4", "3:8", "8:16", "3:2", "2:2", "0:4", "x")
    ),
    ["--pattern", "2:4", "--sparsity", "0.5"],
    ["--pattern", "2:4", "--sparsity", "0.6"],
    *(["--sparsity", "0.5", "--method", m] for m in ("magnitude", "wanda", "sparsegpt", "obs")),
    *(["--sparsity", "0.5", "--forward-dtype", d] for d in ("auto", "bfloat16", "float16", "f8")),
    *(["--sparsity", "0.5", "--stream", s] for s in ("pruned", "dense", "ahead")),
    *(["--sparsity", "0.5", "--allocation", a] for a in ("uniform", "owl", "neuroal", "owl2")),
    ["--pattern", "2:4", "--allocation", "owl"],
    *(
        ["--sparsity", "0.5", "--allocation", "owl", flag, v]
        for flag, v in (("--owl-m", "0"), ("--owl-m", "3"), ("--owl-lambda", "0.5"))
    ),
    *(
        ["--sparsity", "0.5", "--allocation", "neuroal", flag, v]
        for flag, v in (
            ("--neuroal-samples", "0"),
            ("--neuroal-samples", "1"),
            ("--neuroal-grid", "coarse"),
            ("--neuroal-grid", "fine"),
            ("--neuroal-search-method", "auto"),
            ("--neuroal-search-method", "bogus"),
            ("--neuroal-dense-reference", "cached"),
            ("--neuroal-dense-reference", "exact"),
        )
    ),
    *(
        ["--sparsity", "0.5", "--method", "sparsegpt", flag, v]
        for flag, v in (
            ("--sparsegpt-blocksize", "0"),
            ("--sparsegpt-blocksize", "64"),
            ("--sparsegpt-percdamp", "0"),
            ("--sparsegpt-percdamp", "0.1"),
        )
    ),
    *(
        ["--sparsity", "0.5", flag, v]
        for flag, v in (
            ("--calib-samples", "0"),
            ("--calib-samples", "1"),
            ("--seq-len", "1"),
            ("--seq-len", "2"),
            ("--batch-size", "0"),
            ("--seed", "-1"),
            ("--calib", ",,"),
            ("--calib", "python,python"),
            ("--calib", "python,instruct:python"),
        )
    ),
    ["--sparsity", "0.5", "--allocation", "neuroal", "--calib", "answered:python"],
    *(["--sparsity", "0.5", "--dtype", d] for d in ("auto", "bfloat16", "float16", "float8")),
]


def _cli(flags: list[str]) -> str | None:
    """None if `prunekit prune` accepts the flags before loading a model, else its message."""
    args = build_parser().parse_args(["prune", "some-model", "-o", "out", *flags])
    try:
        check_model_args(args)
        config_from_args(args)
    except PrunekitError as exc:
        return str(exc)
    return None


def _recipe(flags: list[str]) -> str | None:
    """The same values as a recipe (YAML-typed), validated; None or the message after its
    `recipe WHERE:` prefix."""
    data: dict = {"model": "some-model", "calibration": {}}
    step: dict = {}
    for flag, text in zip(flags[::2], flags[1::2]):
        value = yaml.safe_load(text) if flag not in ("--pattern", "--calib") else text
        key = FLAG_TO_KEY.get(flag, flag.removeprefix("--neuroal-").replace("-", "_"))
        if flag in STEP:
            step[key] = value
        elif flag in CALIBRATION:
            data["calibration"][CALIBRATION[flag]] = value
        elif flag in ALLOCATION:
            step.setdefault("allocation_options", {})[key] = value
        elif flag in METHOD:
            step.setdefault("method_options", {})[key] = value
        else:
            data[key] = value
    data["steps"] = [{"unstructured": step}]
    try:
        validate(data)
    except PrunekitError as exc:
        return re.sub(r"^recipe (step 1 \(unstructured\)|calibration|top level): ", "", str(exc))
    return None


def _as_recipe_names(message: str) -> str:
    return re.sub(r"--[a-z-]+", lambda m: FLAG_TO_KEY.get(m.group(0), m.group(0)), message)


@pytest.mark.parametrize("flags", CASES, ids=" ".join)
def test_cli_and_recipe_accept_and_reject_alike(flags):
    cli, recipe = _cli(flags), _recipe(flags)
    assert (cli is None) == (recipe is None), (cli, recipe)
    if cli is not None:
        assert _as_recipe_names(cli) == recipe
        assert "\n" not in cli


def test_the_cases_cover_both_outcomes_and_the_former_drift():
    """Both sets are non-trivial, and what a recipe once rejected (dtype auto, 1:4, 8:16,
    search_method auto on the CLI) is accepted by both now."""
    outcomes = [_cli(flags) is None for flags in CASES]
    assert 20 < sum(outcomes) < len(CASES) - 20
    for flags in (["--sparsity", "0.5", "--dtype", "auto"], ["--pattern", "1:4"]):
        assert _cli(flags) is None and _recipe(flags) is None
    assert _cli(["--pattern", "8:16"]) is None and _recipe(["--pattern", "8:16"]) is None


def test_a_method_or_allocation_flag_needs_its_choice():
    assert _cli(["--sparsity", "0.5", "--sparsegpt-blocksize", "64"]) == (
        "--sparsegpt-* flags need --method sparsegpt"
    )
    assert _cli(["--sparsity", "0.5", "--owl-m", "3"]) == "--owl-* flags need --allocation owl"
