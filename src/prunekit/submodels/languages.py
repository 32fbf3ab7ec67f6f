"""Which text a sub-model is calibrated on and evaluated on, per language.

A language is a built-in corpus (python, java, cpp, javascript, text: disjoint by-file splits),
a user path `NAME=PATH` (file, folder or .jsonl with a "text" field), or `hf:DATASET[:SPLIT]`
(a Hugging Face dataset, only where the `datasets` package and a hub are reachable).
User data is split by document: every 10th document is held out; a single document is split at
90% of its lines, so calibration and evaluation text never overlap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prunekit.data.corpora import CORPORA, EVAL_SHARE, get_corpus
from prunekit.data.sources import resolve_source
from prunekit.errors import PrunekitError

BUILTIN_LANGUAGES = ("python", "java", "cpp", "javascript", "text")


@dataclass(frozen=True)
class DocumentSource:
    """Documents for one role; duck-types `TextSource` for `calibration_windows` / `evaluation_windows`."""

    name: str
    docs: tuple[str, ...]
    description: str
    licence: str

    def documents(self, tokenizer=None) -> Iterator[str]:
        yield from self.docs


def split_documents(docs: list[str], split: str) -> list[str]:
    """Every EVAL_SHARE-th document is held out; one document is cut at 90% of its lines."""
    docs = [d for d in docs if d.strip()]
    if len(docs) == 1:
        lines = docs[0].splitlines(keepends=True)
        cut = max(1, (len(lines) * (EVAL_SHARE - 1)) // EVAL_SHARE)
        part = lines[:cut] if split == "calib" else lines[cut:]
        return ["".join(part)] if "".join(part).strip() else []
    return [
        d for i, d in enumerate(docs) if (i % EVAL_SHARE == EVAL_SHARE - 1) == (split == "eval")
    ] or (docs[-1:] if split == "eval" else docs[:-1])


def _hf_documents(spec: str) -> tuple[list[str], str]:
    """`hf:NAME[:SPLIT]` -> the 'text' field of every row (needs `datasets` and a reachable hub)."""
    name, _, hf_split = spec[3:].partition(":")
    try:
        import datasets
    except ImportError as exc:
        raise PrunekitError(
            f"'{spec}' names a Hugging Face dataset, which needs the datasets package: "
            "pip install datasets (and a reachable hub); or pass NAME=PATH to local files"
        ) from exc
    try:
        data = datasets.load_dataset(name, split=hf_split or "train")
    except Exception as exc:  # network, missing dataset, wrong split: one line for the user
        raise PrunekitError(
            f"could not load Hugging Face dataset '{name}': {exc}".splitlines()[0]
        ) from exc
    if "text" not in data.column_names:
        raise PrunekitError(
            f"dataset '{name}' has no 'text' column (columns: {', '.join(data.column_names)})"
        )
    return [t for t in data["text"] if isinstance(t, str)], f"Hugging Face dataset {name}"


@dataclass(frozen=True)
class Language:
    """One calibration / evaluation language: a label and where its text comes from."""

    label: str
    spec: str  # built-in corpus name, a path, or hf:NAME[:SPLIT]

    @property
    def builtin(self) -> bool:
        return self.spec in CORPORA

    def source(self, split: str):
        """The calibration ('calib') or held-out ('eval') part."""
        if self.builtin:
            return resolve_source(self.spec, split)
        if self.spec.startswith("hf:"):
            docs, desc = _hf_documents(self.spec)
            licence = "see the dataset card"
        else:
            whole = resolve_source(self.spec, "calib")
            docs, desc, licence = list(whole.documents()), whole.description, whole.licence
        part = split_documents(docs, split)
        if not part:
            raise PrunekitError(
                f"language '{self.label}' ({self.spec}) has no text for its {split} split; add data"
            )
        return DocumentSource(
            self.label, tuple(part), f"{desc} [{split}: {len(part)} documents]", licence
        )

    def check(self) -> None:
        """Cheap validation before any model is loaded (install hint for missing corpora)."""
        if self.builtin:
            get_corpus(self.spec).files("eval")
        elif not self.spec.startswith("hf:"):
            resolve_source(self.spec, "calib")


def parse_languages(text: str) -> list[Language]:
    """'python,java,mine=./data' -> Languages; unknown names list what is available."""
    out: list[Language] = []
    for item in [t.strip() for t in text.split(",") if t.strip()]:
        label, eq, spec = item.partition("=")
        if not eq:
            label, spec = item, item
        label, spec = label.strip(), spec.strip()
        if (
            spec not in CORPORA
            and not spec.startswith("hf:")
            and not Path(spec).expanduser().exists()
        ):
            if eq:
                raise PrunekitError(
                    f"corpus path '{spec}' for language '{label}' does not exist; give a file, "
                    "a folder or a .jsonl with a 'text' field"
                )
            raise PrunekitError(
                f"unknown language '{spec}'; available: {', '.join(sorted(CORPORA))}, "
                "or NAME=PATH (file, folder or .jsonl), or hf:DATASET"
            )
        if spec.startswith("hf:") and not eq:
            label = spec[3:].split(":")[0].split("/")[-1]
        elif not eq and spec not in CORPORA:
            label = Path(spec).stem or spec
        out.append(Language(label, spec))
    if not out:
        raise PrunekitError(f"--languages is empty; give e.g. {','.join(BUILTIN_LANGUAGES)}")
    labels = [lang.label for lang in out]
    if len(set(labels)) != len(labels):
        raise PrunekitError(
            f"--languages has repeated names ({', '.join(labels)}); label them NAME=PATH"
        )
    return out
