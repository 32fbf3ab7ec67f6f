from prunekit.data.decontam import decontaminate, humaneval_ngrams
from prunekit.evaluation.humaneval import load_problems


def test_a_planted_humaneval_solution_is_removed_and_clean_code_kept():
    p = load_problems(limit=3)[2]
    planted = "# some file\n" + p.prompt + p.canonical_solution + "\nprint('x')\n"
    clean = "def add(a, b):\n    return a + b\n"
    keep, removed = decontaminate([clean, planted, clean], humaneval_ngrams())
    assert keep == [0, 2] and removed == 1
