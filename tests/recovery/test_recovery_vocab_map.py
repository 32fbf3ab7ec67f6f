import pytest

from prunekit.errors import PrunekitError
from prunekit.recovery.vocab_map import teacher_ids_for


class Tok:
    def __init__(self, vocab):
        self.vocab = vocab

    def get_vocab(self):
        return dict(self.vocab)


def test_maps_student_ids_to_teacher_ids_by_string():
    teacher = Tok({"a": 0, "b": 1, "c": 2, "d": 3})
    student = Tok({"a": 0, "c": 1, "d": 2})
    assert teacher_ids_for(student, teacher).tolist() == [0, 2, 3]
    assert teacher_ids_for(teacher, teacher) is None


def test_a_token_the_teacher_lacks_is_one_clear_error():
    with pytest.raises(PrunekitError, match="not a pruned form"):
        teacher_ids_for(Tok({"a": 0, "zz": 1}), Tok({"a": 0, "b": 1}))
