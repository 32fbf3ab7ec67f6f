"""--dtype auto: bfloat16 exactly where the device computes in it, and what load_model records."""

from __future__ import annotations

import pytest
import torch

from prunekit.errors import PrunekitError
from prunekit.models import loading

X86_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
X86_AMX = "flags\t\t: fpu avx512f amx_bf16 amx_tile\n"
X86_PLAIN = "flags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
ARM_PLAIN = "Features\t: fp asimd evtstrm\n"


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [(X86_BF16, True), (X86_AMX, True), (ARM_BF16, True), (X86_PLAIN, False), (ARM_PLAIN, False)],
)
def test_cpu_bf16_flags(cpuinfo, expected):
    assert loading.cpu_has_bf16(cpuinfo) is expected


def test_bf16_in_a_model_name_is_not_a_flag():
    assert not loading.cpu_has_bf16("model name\t: bf16 avx512_bf16 special edition\n")


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_follows_the_cpu(monkeypatch, has_bf16):
    monkeypatch.setattr(loading, "cpu_has_bf16", lambda: has_bf16)
    expected = "bfloat16" if has_bf16 else "float32"
    assert loading.auto_dtype("cpu") == expected
    assert loading.parse_dtype("auto") == loading.DTYPES[expected]


@pytest.mark.parametrize("gpu_bf16", [True, False])
def test_auto_follows_the_gpu_not_the_cpu(monkeypatch, gpu_bf16):
    monkeypatch.setattr(loading, "cpu_has_bf16", lambda: not gpu_bf16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: gpu_bf16)
    assert loading.auto_dtype("cuda:0") == ("bfloat16" if gpu_bf16 else "float32")


def test_explicit_dtypes_pass_and_unknown_ones_name_the_choices():
    assert loading.parse_dtype("float16") is torch.float16
    with pytest.raises(PrunekitError, match="auto, float32, bfloat16, float16"):
        loading.parse_dtype("fp8")


@pytest.mark.parametrize("has_bf16", [True, False])
def test_load_model_auto_records_the_resolved_dtype(monkeypatch, tiny_model_dir, has_bf16):
    monkeypatch.setattr(loading, "cpu_has_bf16", lambda: has_bf16)
    lm = loading.load_model(tiny_model_dir, "auto")
    expected = "bfloat16" if has_bf16 else "float32"
    assert lm.info["dtype"] == expected
    assert next(lm.model.parameters()).dtype == loading.DTYPES[expected]
