"""Typed report sections: the writer builds them and the reader parses them, so neither can use a
key the other does not know."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class MethodSection:
    """`report["method"]`: the pruner, pattern, allocation and target sparsity of a run."""

    name: str
    pattern: str = "unstructured"
    allocation: str = "uniform"
    sparsity: float | None = None  # the target; None for an N:M pattern read from an old report

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_report(cls, report: dict) -> MethodSection | None:
        """The section of a report (None for a dense one); older reports kept the target only
        under `sparsity.target`."""
        raw = report.get("method")
        if not isinstance(raw, dict) or not raw.get("name"):
            return None
        known = {f.name for f in fields(cls)}
        section = cls(**{k: v for k, v in raw.items() if k in known})
        target = (report.get("sparsity") or {}).get("target")
        if section.sparsity is None and isinstance(target, int | float):
            section = cls(section.name, section.pattern, section.allocation, float(target))
        return section

    @property
    def label(self) -> str:
        """'wanda 50%', 'sparsegpt 2:4', 'wanda 70% + owl'."""
        if self.pattern and self.pattern not in ("unstructured", "none"):
            text = f"{self.name} {self.pattern}"
        elif isinstance(self.sparsity, int | float):
            text = f"{self.name} {self.sparsity * 100:.0f}%"
        else:
            text = self.name
        return text if self.allocation in ("uniform", None) else f"{text} + {self.allocation}"
