"""Search budgets: what a candidate may cost, parsed from `params=0.8`, `params=318.5M` or
`size=300MB`, and reduced to one bound on the sum of the decoder layers' parameters.

`params=F` (0 < F ≤ 1): F of the dense model's non-embedding parameters (decoder layers and the
final norm; the embedding and output head are not counted); `params=N[K|M|B]`: that many
non-embedding parameters. `size=N[B|KB|MB|GB|KiB|MiB|GiB]`: bytes of the exported weights at the
model's dtype (every tensor once, embeddings included). Both are exact sums of per-layer costs,
so a candidate's cost is known without building it. `decode=S[x]` (S > 1): the candidate's
predicted per-token decode time at most 1/S of the dense model's, the prediction being the sum of
per-layer times measured on this machine (`search.decode_time`); a decode budget is therefore
machine-specific.

Bad text is one `OptionError` line naming the option (`--budget` on the command line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prunekit.config.options import OptionError

KINDS = ("params", "size", "decode")
_COUNT = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}
_BYTES = {
    "": 1,
    "b": 1,
    "kb": 1e3,
    "mb": 1e6,
    "gb": 1e9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
_FORM = re.compile(r"^\s*([a-z]+)\s*=\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$", re.I)
EXAMPLES = "params=0.8 (of the non-embedding parameters), params=318.5M, size=300MB or decode=1.25x"
_DECODE = (
    "decode takes the predicted decode speedup over the dense model, a number above 1 such as "
    "decode=1.25x"
)


@dataclass(frozen=True)
class Budget:
    """A parsed budget: `kind` params, size or decode, `value` and whether it is a fraction of
    dense (params) or a speedup over it (decode)."""

    kind: str
    value: float
    fraction: bool
    text: str

    def limit(self, dense: int, fixed: int, itemsize: int) -> float:
        """The most the decoder layers may cost together (parameters, or ns for decode), given
        the dense model's cost in the budget's units (`dense`: non-embedding parameters, or the
        whole predicted decode time), the part no level changes (`fixed`) and bytes per
        parameter of the export (`itemsize`)."""
        if self.kind == "params":
            total = self.value * dense if self.fraction else self.value
        elif self.kind == "decode":
            total = dense / self.value
        else:
            total = self.value / itemsize
        return total - fixed


def parse_budget(text: str) -> Budget:
    """A Budget from `KIND=VALUE`; one OptionError line naming what is wrong and the fix."""
    if not isinstance(text, str):
        raise OptionError(f"<budget> must be text such as {EXAMPLES}, got {text!r}")
    found = _FORM.match(text)
    if text.partition("=")[0].strip().lower() == "decode":
        return _decode(text, found)
    if not found:
        raise OptionError(f"cannot read <budget> '{text}'; give e.g. {EXAMPLES}")
    kind, number, unit = found.group(1).lower(), float(found.group(2)), found.group(3).lower()
    if kind not in KINDS:
        raise OptionError(f"unknown <budget> kind '{kind}' in '{text}'; give e.g. {EXAMPLES}")
    if kind == "params":
        if unit == "" and number <= 1:
            if number <= 0:
                raise OptionError(f"<budget> '{text}': the fraction must be in (0, 1]")
            return Budget(kind, number, True, text)
        if unit not in _COUNT:
            raise OptionError(
                f"<budget> '{text}': params takes a fraction in (0, 1] or a count with K, M or B"
            )
        return Budget(kind, number * _COUNT[unit], False, text)
    if unit not in _BYTES or number <= 0:
        raise OptionError(
            f"<budget> '{text}': size takes a positive size with B, KB, MB, GB, KiB, MiB or GiB"
        )
    return Budget(kind, number * _BYTES[unit], False, text)


def _decode(text: str, found: re.Match | None) -> Budget:
    """decode=S or decode=Sx with S > 1."""
    if found and found.group(3).lower() in ("", "x") and float(found.group(2)) > 1:
        return Budget("decode", float(found.group(2)), False, text)
    raise OptionError(f"<budget> '{text}': {_DECODE}")
