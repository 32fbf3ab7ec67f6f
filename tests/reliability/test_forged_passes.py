"""The attacks from the security review, replayed: none of them scores a pass any more."""

from __future__ import annotations

import pytest

from prunekit.evaluation import humaneval as he
from prunekit.evaluation.sandbox import Limits, run_many, run_program

FAST = Limits(wall_s=5.0, cpu_s=5, memory_mb=512)
# the completion body that passed 164/164 problems when the bootstrap shared the interpreter
REPORT_TRICK = (
    "    import __main__ as m\n"
    "    m._report(status='passed', error=None, detail=None)\n"
    "    m.os._exit(0)\n"
)
# the return value that passed 157/164
ALWAYS_EQUAL = (
    "    class A:\n"
    "        def __eq__(self, other):\n"
    "            return True\n"
    "        def __ne__(self, other):\n"
    "            return False\n"
    "        def __lt__(self, other):\n"
    "            return True\n"
    "        __gt__ = __le__ = __ge__ = __lt__\n"
    "        def __abs__(self):\n"
    "            return 0\n"
    "        __sub__ = __rsub__ = __add__ = __radd__ = lambda self, other: self\n"
    "    return A()\n"
)


def test_the_reviewers_run_program_command_fails():
    r = run_program(
        'import __main__ as m\nm._report(status="passed",error=None,detail=None)\n'
        "m.os._exit(0)\nassert False"
    )
    assert not r.passed


@pytest.mark.parametrize("body", [REPORT_TRICK, ALWAYS_EQUAL], ids=["report", "always-equal"])
def test_forged_completions_pass_no_problem(body):
    problems = he.load_problems(limit=12)
    results = run_many([he.build_check(p, body, "completion") for p in problems], FAST, workers=2)
    assert [p.task_id for p, r in zip(problems, results) if r.passed] == []
