"""Process-level helpers: peak-RSS accounting that one process can restart per model."""

from __future__ import annotations

import sys

import pytest
import torch

from prunekit.utils import peak_rss_mb, reset_peak_rss


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM / clear_refs are Linux")
def test_peak_rss_can_be_restarted_after_a_large_allocation_is_freed():
    if not reset_peak_rss():
        pytest.skip("kernel does not allow resetting the peak RSS")
    base = peak_rss_mb()
    big = torch.ones(64 * 2**20 // 4 * 4)  # 256 MiB, touched so it is resident
    high = peak_rss_mb()
    assert high - base > 200
    del big
    assert peak_rss_mb() == pytest.approx(high, abs=1)  # a peak does not fall by itself
    assert reset_peak_rss()
    assert peak_rss_mb() < high - 200
