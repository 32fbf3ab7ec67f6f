"""`prunekit recover` flags, the recipe's `recover` step and `prunekit.recover`'s keywords accept
and reject the same values with the same message (each spelling its own names): all three are
RecoveryConfig. The one intended difference: a recipe runs in one process, so no FSDP."""

from __future__ import annotations

import math
import re

import pytest

import prunekit
from prunekit.cli import build_parser, recover_cmd
from prunekit.errors import PrunekitError
from prunekit.recipes.schema import validate

# the recipe key → the CLI's flag where it is not --KEY-WITH-DASHES (written out here)
KEY_TO_FLAG = {"time_budget_s": "--time-budget"}

CASES = [
    {},
    *({"method": v} for v in ("distill", "reconstruct", "prune")),
    *({"train": v} for v in ("norms", "lora", "full", "all")),
    *({"layers": v} for v in ("all", "pruned", "some")),
    {"data": "python"},
    *({"seq_len": v} for v in (1, 2)),
    *({k: 0} for k in ("windows", "instructions", "batch_size", "micro_batch", "epochs")),
    *({k: 0} for k in ("lora_rank", "checkpoint_every", "max_tokens")),
    *({"lr": v} for v in (0, 0.5, 1, -1, math.nan)),
    *({"warmup_steps": v} for v in (-1, 0)),
    *({"max_steps": v} for v in (0, -3, 5)),
    *({"time_budget_s": v} for v in (0, 60, math.inf, math.nan, -1)),
    *({"lora_alpha": v} for v in (0, -1, 8, math.inf)),
    *({"seed": v} for v in (-1, 3)),
    *({"bf16": v} for v in (True, False)),
    *({"shard": v} for v in ("ddp", "zero3")),
    {"method": "reconstruct", "shard": "fsdp"},
    {"method": "reconstruct", "train": "lora"},
]
# values a flag cannot carry (argparse refuses them by type, or there is no flag for None)
NO_FLAG = [
    *({"seq_len": v} for v in (1.5, "x", True)),
    {"lr": "1e-2"},  # YAML 1.1 reads 1e-2 as text
    {"bf16": "yes"},
    {"max_steps": 2.5},
    {"max_steps": None, "max_tokens": None, "time_budget_s": None},
    {"max_tokens": None, "max_steps": 3},
    {"epoch": 1},
]


def _flags(options: dict) -> list[str]:
    flags = []
    for key, value in options.items():
        flag = KEY_TO_FLAG.get(key, "--" + key.replace("_", "-"))
        if isinstance(value, bool):
            flags.append(flag if value else flag.replace("--", "--no-", 1))
        else:
            flags += [flag, str(value)]
    return flags


def _as_keys(message: str) -> str:
    flags = {flag: key for key, flag in KEY_TO_FLAG.items()}
    return re.sub(r"--[a-z-]+", lambda m: flags.get(m[0], m[0][2:].replace("-", "_")), message)


class _Accepted(Exception):
    """Raised where a surface, its options accepted, goes on to the model."""


def _cli(options: dict, monkeypatch) -> str | None:
    """The command's own run: accepted once it asks who the teacher is (before any load)."""

    def accepted(*args):
        raise _Accepted

    monkeypatch.setattr(recover_cmd, "teacher_of", accepted)
    args = build_parser().parse_args(["recover", "student", "-o", "out", *_flags(options)])
    try:
        args.func(args)
    except _Accepted:
        return None
    except PrunekitError as exc:
        return str(exc)
    raise AssertionError("the command neither went on nor refused the options")


def _recipe(options: dict) -> str | None:
    try:
        validate({"model": "some-model", "steps": [{"recover": options}]})
    except PrunekitError as exc:
        return re.sub(r"^recipe step 1 \(recover\): ", "", str(exc))
    return None


class _Model:
    def __getattr__(self, name):
        raise _Accepted


def _api(options: dict) -> str | None:
    try:
        prunekit.recover(_Model(), _Model(), _Model(), _Model(), progress=False, **options)
    except _Accepted:
        return None
    except PrunekitError as exc:
        return str(exc)
    raise AssertionError("the API neither used the model nor refused the options")


@pytest.mark.parametrize("options", CASES, ids=str)
def test_cli_and_recipe_accept_and_reject_alike(options, monkeypatch):
    cli, recipe = _cli(options, monkeypatch), _recipe(options)
    assert (cli is None) == (recipe is None), (cli, recipe)
    if cli is not None:
        assert _as_keys(cli) == recipe
        assert "\n" not in cli


@pytest.mark.parametrize("options", CASES + NO_FLAG, ids=str)
def test_api_and_recipe_accept_and_reject_alike(options):
    api, recipe = _api(options), _recipe(options)
    assert (api is None) == (recipe is None), (api, recipe)
    if api is None:
        return
    unknown = re.match(r"unknown option '(\w+)'", api)
    if unknown:  # the API lists keywords, the recipe keys: the same key named unknown
        assert re.match(rf"unknown key '{unknown[1]}'", recipe), (api, recipe)
    else:
        assert api == recipe


def test_the_cases_cover_both_outcomes(monkeypatch):
    accepted = [_cli(options, monkeypatch) is None for options in CASES]
    assert 10 < sum(accepted) < len(CASES) - 10
    assert sum(_recipe(options) is None for options in NO_FLAG) == 1  # max_tokens: None


def test_fsdp_is_the_one_difference(monkeypatch):
    """Under torchrun the command shards; a recipe (one process) says how to run it instead."""
    assert _cli({"shard": "fsdp"}, monkeypatch) is None
    assert _api({"shard": "fsdp"}) is not None  # no process group: checked before any work
    assert "fsdp needs torchrun's processes" in _recipe({"shard": "fsdp"})


def test_recipe_keeps_a_given_none_budget_and_records_the_learning_rate():
    step = validate(
        {"model": "m", "steps": [{"recover": {"max_tokens": None, "max_steps": 3}}]}
    ).steps[0]
    assert step.config.max_tokens is None and step.config.max_steps == 3
    assert step.options["lr"] == 2e-5 and step.options["teacher"] is None  # distill / full


def test_the_api_takes_a_config_or_keywords_not_both():
    cfg = prunekit.RecoveryConfig(train="lora")
    assert cfg.lr == 3e-4
    with pytest.raises(PrunekitError, match="not both"):
        prunekit.recover(_Model(), _Model(), _Model(), _Model(), cfg, train="norms")


def test_a_config_built_directly_refuses_in_one_line():
    """`RecoveryConfig(...)` as the API docs show it: a bad value is a PrunekitError line, as the
    keywords give it (no pydantic traceback)."""
    with pytest.raises(PrunekitError) as built:
        prunekit.RecoveryConfig(seq_len=1)
    assert str(built.value) == _api({"seq_len": 1}) == "seq_len must be a whole number ≥ 2, got 1"
