"""Issue 31, item 10: StopIteration from a candidate cannot end the tests' map() early, negative
warmup and LoRA alpha are refused (the sandbox's installed-packages cover is a probe in
tests/evaluation/sandbox_probes.py; -o as the model folder is in test_late_failures_round2)."""

from __future__ import annotations

import math

import pytest
import torch

from prunekit.errors import PrunekitError
from prunekit.evaluation.sandbox import Check, Limits, run_check
from prunekit.recovery.config import RecoveryConfig

LIMITS = Limits(wall_s=10.0, cpu_s=5, memory_mb=256)


@pytest.mark.parametrize(
    "test",
    [
        "assert all(map(candidate, [1, 2, 3]))\n",
        "assert list(filter(lambda x: not candidate(x), [1, 2])) == []\n",
        "for a, b in zip(map(candidate, [1, 2]), [True, True]):\n    assert a == b\n",
        "assert sum(1 for _ in map(candidate, [1, 2])) == 0 or False\n",
    ],
)
def test_stop_iteration_does_not_end_the_tests_early(test):
    for exc in ("StopIteration", "StopAsyncIteration"):
        result = run_check(Check(f"def f(x):\n    raise {exc}\n", test, "f"), LIMITS)
        assert not result.passed and result.error == "exception", result
        assert exc in result.detail


def test_an_honest_candidate_still_passes_map_tests():
    result = run_check(
        Check("def f(x):\n    return x > 0\n", "assert all(map(candidate, [1, 2, 3]))\n", "f"),
        LIMITS,
    )
    assert result.passed, result


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"warmup_steps": -1}, "warmup_steps must be a whole number ≥ 0"),
        ({"warmup_steps": 1.5}, "warmup_steps must be a whole number ≥ 0"),
        ({"lora_alpha": -8.0}, "lora_alpha must be a positive number"),
        ({"lora_alpha": 0.0}, "lora_alpha must be a positive number"),
        ({"lora_alpha": math.nan}, "lora_alpha must be a positive number"),
        ({"time_budget_s": math.nan}, "time_budget_s must be a finite number"),
        ({"max_steps": 2.5}, "max_steps must be a whole number"),
    ],
)
def test_recovery_settings_out_of_range(options, needle):
    with pytest.raises(PrunekitError, match=needle):
        RecoveryConfig.check(options)


def test_zero_warmup_is_fine():
    RecoveryConfig.check({"warmup_steps": 0})


def test_cli_refuses_negative_warmup_before_loading(capsys, tmp_path, monkeypatch):
    from prunekit.cli import main

    def tripwire(*args, **kwargs):
        raise AssertionError("loaded before refusing")

    monkeypatch.setattr("prunekit.models.loading.load_model", tripwire)
    for flag, value in (("--warmup-steps", "-5"), ("--lora-alpha", "-1")):
        code = main(["recover", "m", "--teacher", "t", flag, value, "-o", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and f"{flag} must be" in err


def test_lora_layer_refuses_a_bad_alpha():
    from prunekit.recovery.lora import MaskedLoRALinear

    for rank, alpha in ((4, -1.0), (0, 8.0), (4, math.inf)):
        with pytest.raises(PrunekitError, match="LoRA needs rank >= 1 and alpha > 0"):
            MaskedLoRALinear(torch.nn.Linear(8, 8), rank, alpha)
