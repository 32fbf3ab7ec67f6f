"""Energy and CO₂ of a piece of work: measured where the hardware allows, else an estimate.

Order of preference:
1. RAPL counters (`/sys/class/powercap/intel-rapl:N/energy_uj`), if readable: a real
   measurement of the CPU packages (the whole package, other processes included).
2. `codecarbon`, if installed (it measures via RAPL/NVML where it can and otherwise
   estimates from its own TDP table; its mode is recorded).
3. An estimate: CPU seconds used by this process and its children × an assumed power per
   busy core (default 10 W, `PRUNEKIT_CPU_WATTS_PER_CORE`). Always labelled an estimate.
On CUDA, NVML's energy counter (via `pynvml`, if installed) adds a measured GPU figure.
CO₂ = energy × grid intensity (`PRUNEKIT_GRID_GCO2_PER_KWH`, default 475 g/kWh, the world
average that codecarbon also falls back to).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

RAPL_ROOT = Path("/sys/class/powercap")
DEFAULT_WATTS_PER_CORE = 10.0
DEFAULT_GRID_G_PER_KWH = 475.0
J_PER_KWH = 3.6e6


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def rapl_domains(root: Path = RAPL_ROOT) -> list[Path]:
    """Top-level RAPL package domains whose counters this process can read."""
    out = []
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        if re.fullmatch(r"intel-rapl:\d+", d.name):
            try:
                int((d / "energy_uj").read_text())
                out.append(d)
            except (OSError, ValueError):
                continue
    return out


def _read_uj(domain: Path) -> tuple[int, int]:
    value = int((domain / "energy_uj").read_text())
    try:
        wrap = int((domain / "max_energy_range_uj").read_text())
    except (OSError, ValueError):
        wrap = 0
    return value, wrap


def rapl_delta_j(before: dict[Path, tuple[int, int]], after: dict[Path, tuple[int, int]]) -> float:
    """Joules between two readings, counter wrap-around handled."""
    total = 0
    for d, (v0, wrap) in before.items():
        v1 = after[d][0]
        total += v1 - v0 if v1 >= v0 else v1 + wrap - v0
    return total / 1e6


def estimate_cpu_energy_j(cpu_seconds: float, watts_per_core: float) -> float:
    """CPU-time × assumed power of one busy core (an estimate, not a measurement)."""
    return max(0.0, cpu_seconds) * watts_per_core


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class EnergyMeter:
    """`with EnergyMeter() as m: ...; m.result` → energy section for the report."""

    def __init__(self, device: str = "cpu", use_codecarbon: bool = True) -> None:
        self.device = str(device)
        self.use_codecarbon = use_codecarbon
        self.result: dict = {}

    def __enter__(self) -> EnergyMeter:
        self._t0 = time.perf_counter()
        self._cpu0 = _cpu_seconds()
        self._domains = rapl_domains()
        self._rapl0 = {d: _read_uj(d) for d in self._domains}
        self._tracker = None
        if not self._domains and self.use_codecarbon:
            try:
                from codecarbon import OfflineEmissionsTracker

                self._tracker = OfflineEmissionsTracker(
                    country_iso_code=os.environ.get("PRUNEKIT_COUNTRY_ISO", "WLD"),
                    save_to_file=False,
                    log_level="error",
                )
                self._tracker.start()
            except Exception:  # noqa: BLE001 - optional dependency, any failure → fallback
                self._tracker = None
        self._nvml0 = self._nvml_mj()
        return self

    def _nvml_mj(self) -> int | None:
        if not self.device.startswith("cuda"):
            return None
        try:
            import pynvml

            pynvml.nvmlInit()
            index = int(self.device.split(":")[1]) if ":" in self.device else 0
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            return int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        except Exception:  # noqa: BLE001
            return None

    def __exit__(self, *exc) -> None:
        duration = time.perf_counter() - self._t0
        cpu_s = _cpu_seconds() - self._cpu0
        grid = _env_float("PRUNEKIT_GRID_GCO2_PER_KWH", DEFAULT_GRID_G_PER_KWH)
        res: dict = {"duration_s": round(duration, 3), "cpu_s": round(cpu_s, 3)}
        if self._domains:
            joules = rapl_delta_j(self._rapl0, {d: _read_uj(d) for d in self._domains})
            res.update(
                method="rapl",
                measured=True,
                note="RAPL package counters: whole CPU packages, other processes included",
            )
        elif self._tracker is not None:
            kg = self._tracker.stop() or 0.0
            data = getattr(self._tracker, "final_emissions_data", None)
            kwh = float(getattr(data, "energy_consumed", 0.0) or 0.0)
            joules = kwh * J_PER_KWH
            res.update(
                method="codecarbon",
                measured=None,
                co2_kg=float(kg),
                note="codecarbon: measured where it can read RAPL/NVML, else its own estimate",
            )
        else:
            watts = _env_float("PRUNEKIT_CPU_WATTS_PER_CORE", DEFAULT_WATTS_PER_CORE)
            joules = estimate_cpu_energy_j(cpu_s, watts)
            res.update(
                method="estimate",
                measured=False,
                watts_per_core=watts,
                note=f"ESTIMATE: no readable power counters; CPU-seconds × {watts:g} W "
                "per busy core (assumed TDP share)",
            )
        nvml1 = self._nvml_mj()
        if self._nvml0 is not None and nvml1 is not None:
            gpu_j = (nvml1 - self._nvml0) / 1000.0
            res["gpu_energy_j"] = round(gpu_j, 3)
            joules += gpu_j
        res["energy_j"] = round(joules, 3)
        res["energy_kwh"] = joules / J_PER_KWH
        res.setdefault("co2_kg", joules / J_PER_KWH * grid / 1000.0)
        res["grid_gco2_per_kwh"] = grid
        self.result = res
