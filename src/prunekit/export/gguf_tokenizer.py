"""A model folder's tokenizer as llama.cpp's GGUF vocabulary (byte-level BPE, `gpt2` model).

llama.cpp tokenizes with its own code, so the GGUF must describe the folder's tokenizer exactly:
every id's string (gaps padded as UNUSED `[PADn]`, so the list matches the embedding rows),
token types (added special tokens CONTROL, other added tokens USER_DEFINED in their raw text),
the merges in rank order (a pruned vocabulary already dropped those that point at removed
tokens; any left are dropped here too), the pre-tokenizer by llama.cpp's name for the same
split, and the special ids. What llama.cpp cannot reproduce (a normalizer other than NFC, an
unknown split rule, a prefix space, Unigram/WordPiece) is refused with one line. The truth is
the tokenizer transformers builds for the folder, not tokenizer.json's text (see
`loaded_tokenizer_json`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from prunekit.errors import PrunekitError

NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5  # gguf.TokenType values

# the split regexes of the pre-tokenizers llama.cpp knows by name (tokenizer.ggml.pre)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _byte_level(node: dict, use_regex: bool) -> bool:
    return (
        node.get("type") == "ByteLevel"
        and bool(node.get("use_regex", True)) == use_regex
        and not node.get("add_prefix_space", False)
    )


def _split(node: dict, pattern: str) -> bool:
    return (
        node.get("type") == "Split"
        and node.get("pattern", {}).get("Regex") == pattern
        and node.get("behavior") == "Isolated"
        and not node.get("invert", False)
    )


def _parts(pre: dict | None) -> list[dict]:
    if pre is None:
        return []
    return list(pre["pretokenizers"]) if pre.get("type") == "Sequence" else [pre]


# llama.cpp pre-tokenizer name → whether a tokenizers pre_tokenizer (as a list of steps) is it
PRE_TOKENIZERS = {
    "gpt-2": lambda p: len(p) == 1 and _byte_level(p[0], True),
    "qwen2": lambda p: len(p) == 2 and _split(p[0], QWEN2_SPLIT) and _byte_level(p[1], False),
    "llama-bpe": lambda p: len(p) == 2 and _split(p[0], LLAMA3_SPLIT) and _byte_level(p[1], False),
    "smollm": lambda p: (
        len(p) == 2
        and p[0].get("type") == "Digits"
        and p[0].get("individual_digits") is True
        and _byte_level(p[1], True)
    ),
}


def pre_tokenizer_name(tok_json: dict) -> str:
    """llama.cpp's name for the folder's pre-tokenizer; one line when it has none."""
    parts = _parts(tok_json.get("pre_tokenizer"))
    for name, matches in PRE_TOKENIZERS.items():
        if matches(parts):
            return name
    steps = ", ".join(p.get("type", "?") for p in parts) or "none"
    raise PrunekitError(
        f"the tokenizer's pre-tokenizer ({steps}) has no llama.cpp equivalent that splits text "
        f"the same way (known: {', '.join(PRE_TOKENIZERS)}); GGUF export cannot keep its "
        "tokenization exact"
    )


@dataclass
class GGUFVocab:
    """Everything tokenizer.ggml.* holds, in llama.cpp's terms."""

    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str
    special: dict[str, int] = field(default_factory=dict)  # bos/eos/pad/unk → id
    add_bos: bool = False
    add_eos: bool = False
    chat_template: str | None = None
    dropped_merges: int = 0


def _looks_special(token: str) -> bool:
    """What llama.cpp's converter also treats as a control token: <|...|> and <...> markers."""
    return (token.startswith("<|") and token.endswith("|>")) or (
        token.startswith("<") and token.endswith(">") and " " not in token and len(token) > 2
    )


def _tokens(tok_json: dict, rows: int) -> tuple[list[str], list[int]]:
    vocab = {i: t for t, i in tok_json["model"]["vocab"].items()}
    added = {a["id"]: a for a in tok_json.get("added_tokens", [])}
    top = max([*vocab, *added], default=-1) + 1
    if top > rows:
        raise PrunekitError(
            f"the tokenizer has ids up to {top - 1} but the embedding has {rows} rows; "
            "tokenizer and weights do not match"
        )
    tokens, types = [], []
    for i in range(rows):
        if i in added:
            a = added[i]
            tokens.append(a["content"])
            kind = CONTROL if a.get("special") or _looks_special(a["content"]) else USER_DEFINED
            types.append(kind)
        elif i in vocab:
            tokens.append(vocab[i])
            types.append(NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
    return tokens, types


def _merges(tok_json: dict, kept: set[str]) -> tuple[list[str], int]:
    """'a b' merges in rank order whose parts and result are all tokens; and how many were not."""
    out, dropped = [], 0
    for m in tok_json["model"].get("merges", []):
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        if a in kept and b in kept and a + b in kept:
            out.append(f"{a} {b}")
        else:
            dropped += 1
    return out, dropped


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _token_id(value, vocab: dict[str, int]) -> int | None:
    if isinstance(value, dict):
        value = value.get("content")
    return vocab.get(value) if isinstance(value, str) else None


def _first(value) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) and value >= 0 else None


def special_ids(folder: Path, tok_json: dict) -> dict[str, int]:
    """bos/eos/pad/unk ids: generation_config.json, then config.json, then tokenizer_config.json
    (the same precedence the evaluation uses for eos); the first of an eos list."""
    vocab = dict(tok_json["model"]["vocab"])
    vocab.update({a["content"]: a["id"] for a in tok_json.get("added_tokens", [])})
    sources = [_read_json(folder / n) for n in ("generation_config.json", "config.json")]
    tok_cfg = _read_json(folder / "tokenizer_config.json")
    out: dict[str, int] = {}
    for kind in ("bos", "eos", "pad", "unk"):
        for src in sources:
            found = _first(src.get(f"{kind}_token_id"))
            if found is not None:
                out[kind] = found
                break
        else:
            found = _token_id(tok_cfg.get(f"{kind}_token"), vocab)
            if found is not None:
                out[kind] = found
    return out


def chat_template(folder: Path) -> str | None:
    """The folder's chat template (chat_template.jinja, else tokenizer_config.json's)."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    value = _read_json(folder / "tokenizer_config.json").get("chat_template")
    if isinstance(value, list):  # named templates: the default one
        value = next((t.get("template") for t in value if t.get("name") == "default"), None)
    return value if isinstance(value, str) else None


def _adds(tok_json: dict, bos: int | None, eos: int | None) -> tuple[bool, bool]:
    """Whether encoding with special tokens prepends bos / appends eos (the post-processor)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(json.dumps(tok_json))
    plain = tok.encode("a", add_special_tokens=False).ids
    full = tok.encode("a", add_special_tokens=True).ids
    add_bos = bos is not None and len(full) > len(plain) and full[0] == bos
    add_eos = eos is not None and len(full) > len(plain) and full[-1] == eos
    return add_bos, add_eos


def loaded_tokenizer_json(folder: Path) -> dict:
    """The `tokenizers` JSON of the tokenizer transformers builds for the folder: the truth, as
    transformers may rebuild the pipeline from its class (a qwen2 folder gets Qwen2's split and
    NFC normalizer whatever its tokenizer.json says)."""
    from transformers import AutoTokenizer

    if not (Path(folder) / "tokenizer.json").is_file():
        raise PrunekitError(
            f"'{folder}' has no tokenizer.json; GGUF export needs the fast tokenizer file"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as exc:  # noqa: BLE001 - tokenizers raise many types for damaged files
        raise PrunekitError(f"could not read the tokenizer in '{folder}' ({exc})") from None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise PrunekitError(f"'{folder}' has no fast tokenizer; GGUF export needs one")
    return json.loads(backend.to_str())


def check_tokenizer_json(tok_json: dict) -> str:
    """llama.cpp's pre-tokenizer name for a `tokenizers` JSON; one line when llama.cpp's gpt2
    tokenizer would not split text alike."""
    model = tok_json.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        kind = "byte-fallback BPE" if model.get("byte_fallback") else model.get("type")
        raise PrunekitError(
            f"GGUF export supports byte-level BPE tokenizers (gpt2-style), not {kind}"
        )
    normalizer = (tok_json.get("normalizer") or {}).get("type")
    if normalizer not in (None, "NFC"):  # NFC: a no-op on NFC text (code is); llama.cpp's too
        raise PrunekitError(
            f"the tokenizer normalizes text ({normalizer}) before splitting it, which llama.cpp's "
            "gpt2 tokenizer does not do; GGUF export cannot keep its tokenization exact"
        )
    return pre_tokenizer_name(tok_json)


def read_vocab(folder: Path, rows: int) -> GGUFVocab:
    """The folder's tokenizer (as transformers loads it, + configs) as a GGUF vocabulary of
    exactly `rows` ids."""
    tok_json = loaded_tokenizer_json(folder)
    pre = check_tokenizer_json(tok_json)
    tokens, types = _tokens(tok_json, rows)
    merges, dropped = _merges(tok_json, {t for t, k in zip(tokens, types) if k == NORMAL})
    special = special_ids(Path(folder), tok_json)
    add_bos, add_eos = _adds(tok_json, special.get("bos"), special.get("eos"))
    return GGUFVocab(
        tokens=tokens,
        types=types,
        merges=merges,
        pre=pre,
        special=special,
        add_bos=add_bos,
        add_eos=add_eos,
        chat_template=chat_template(Path(folder)),
        dropped_merges=dropped,
    )


def add_vocab(writer, vocab: GGUFVocab) -> None:
    """Write tokenizer.ggml.* through a gguf.GGUFWriter."""
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    adders = {
        "bos": writer.add_bos_token_id,
        "eos": writer.add_eos_token_id,
        "pad": writer.add_pad_token_id,
        "unk": writer.add_unk_token_id,
    }
    for kind, token in vocab.special.items():
        adders[kind](token)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)


def _pre_tokenizer(name: str):
    """The `tokenizers` pre-tokenizer llama.cpp's `name` stands for (the inverse of
    `pre_tokenizer_name`)."""
    from tokenizers import Regex, pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    raw_bytes = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if name == "gpt-2":
        return byte_level
    if name in ("qwen2", "llama-bpe"):
        split = QWEN2_SPLIT if name == "qwen2" else LLAMA3_SPLIT
        return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(split), "isolated"), raw_bytes])
    if name == "smollm":
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    raise PrunekitError(f"the GGUF's pre-tokenizer '{name}' is not one prunekit reads back")


def tokenizer_from_gguf(path: Path):
    """A transformers tokenizer rebuilt from a GGUF's tokenizer.ggml.* (for chat templates and
    prompts when llama.cpp runs the file; works for every architecture, deci included)."""
    from gguf import GGUFReader
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    fields = GGUFReader(str(path)).fields

    def value(key, default=None):
        field_ = fields.get(key)
        return field_.contents() if field_ is not None else default

    if value("tokenizer.ggml.model") != "gpt2":
        raise PrunekitError(
            f"'{path}' has a {value('tokenizer.ggml.model')!r} tokenizer; prunekit's llama.cpp "
            "evaluation reads byte-level BPE (gpt2) tokenizers"
        )
    tokens = list(value("tokenizer.ggml.tokens"))
    types = list(value("tokenizer.ggml.token_type"))
    merges = [tuple(m.split(" ", 1)) for m in value("tokenizer.ggml.merges", [])]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = _pre_tokenizer(value("tokenizer.ggml.pre", "gpt-2"))
    if value("tokenizer.ggml.pre") == "qwen2":
        tok.normalizer = normalizers.NFC()  # what transformers' Qwen2Tokenizer adds
    tok.decoder = decoders.ByteLevel()
    tok.add_tokens(
        [
            AddedToken(t, special=k == CONTROL, normalized=False)
            for t, k in zip(tokens, types)
            if k in (CONTROL, USER_DEFINED)
        ]
    )
    names = {"bos": "bos_token", "eos": "eos_token", "pad": "padding_token", "unk": "unknown_token"}
    special = {  # only added tokens: naming an ordinary token would make it split text
        f"{kind}_token": tokens[i]
        for kind, key in names.items()
        if isinstance(i := value(f"tokenizer.ggml.{key}_id"), int)
        and 0 <= i < len(tokens)
        and types[i] in (CONTROL, USER_DEFINED)
    }
    if value("tokenizer.ggml.add_bos_token", False) and "bos_token" in special:
        bos = special["bos_token"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokens.index(bos))]
        )
    out = PreTrainedTokenizerFast(tokenizer_object=tok, **special)
    template = value("tokenizer.chat_template")
    if template:
        out.chat_template = template
    return out
