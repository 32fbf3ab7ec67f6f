"""Energy: RAPL counters are read (with wrap-around), else the estimate says it is one."""

from __future__ import annotations

from prunekit.evaluation import energy


def _domain(root, name, uj, wrap=1000_000_000):
    d = root / name
    d.mkdir()
    (d / "energy_uj").write_text(str(uj))
    (d / "max_energy_range_uj").write_text(str(wrap))
    return d


def test_rapl_domains_and_wraparound(tmp_path):
    a = _domain(tmp_path, "intel-rapl:0", 5_000_000)
    _domain(tmp_path, "intel-rapl:0:0", 1)  # a sub-domain: not double counted
    b = _domain(tmp_path, "intel-rapl:1", 999_000_000)
    assert energy.rapl_domains(tmp_path) == [a, b]
    before = {d: energy._read_uj(d) for d in (a, b)}
    (a / "energy_uj").write_text("7000000")  # +2 J
    (b / "energy_uj").write_text("1000000")  # wrapped: +2 J
    after = {d: energy._read_uj(d) for d in (a, b)}
    assert energy.rapl_delta_j(before, after) == 4.0
    assert energy.rapl_domains(tmp_path / "none") == []


def test_estimate_is_labelled(monkeypatch):
    monkeypatch.setattr(energy, "rapl_domains", lambda root=None: [])
    monkeypatch.setenv("PRUNEKIT_CPU_WATTS_PER_CORE", "20")
    with energy.EnergyMeter(use_codecarbon=False) as m:
        sum(i * i for i in range(200_000))
    r = m.result
    assert r["method"] == "estimate" and r["measured"] is False and "ESTIMATE" in r["note"]
    assert r["watts_per_core"] == 20.0
    assert abs(r["energy_j"] - r["cpu_s"] * 20) < 0.01
    assert r["co2_kg"] == r["energy_kwh"] * r["grid_gco2_per_kwh"] / 1000
    assert energy.estimate_cpu_energy_j(-1, 10) == 0.0
