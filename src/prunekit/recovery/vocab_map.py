"""Map a vocabulary-pruned student's token ids to its teacher's, by token string."""

from __future__ import annotations

import torch

from prunekit.errors import PrunekitError


def teacher_ids_for(student_tokenizer, teacher_tokenizer) -> torch.Tensor | None:
    """Teacher id of every student id (index = student id), or None when the vocabularies agree.

    A student token the teacher does not know means the student is not a pruned form of it.
    """
    sv, tv = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if sv == tv:
        return None
    missing = [tok for tok in sv if tok not in tv]
    if missing:
        raise PrunekitError(
            f"the student's tokenizer has {len(missing)} token(s) its teacher lacks (e.g. "
            f"{missing[0]!r}), so it is not a pruned form of that teacher; pass the model it was "
            "pruned from with --teacher"
        )
    ids = torch.full((max(sv.values()) + 1,), -1, dtype=torch.long)
    for tok, i in sv.items():
        ids[i] = tv[tok]
    if bool((ids < 0).any()):
        raise PrunekitError(
            "the student's tokenizer has gaps in its ids; it cannot be mapped to the teacher"
        )
    return ids
