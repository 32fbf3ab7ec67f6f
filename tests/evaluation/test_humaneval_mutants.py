"""HumanEval program assembly and post-processing on hand-written problems, without the sandbox:
the exact candidate, test and context strings; the trusted judge fed by a stand-in candidate on
real pipes; every stop sequence; code extraction (post-processing inside run_humaneval and the
generation stop rule: test_humaneval_postprocess_mutants.py).
Mutants this kills: tests/MUTATION.md §6."""

from __future__ import annotations

import math
import os
import threading

import pytest

from prunekit.evaluation import humaneval as he
from prunekit.evaluation.sandbox_judge import judge
from prunekit.evaluation.sandbox_wire import decode, encode, read_frame, write_frame

PROMPT = (
    "import math\n\n\ndef _square(x):\n    return x * x\n\n\n"
    'def area(r):\n    """The area of a circle of radius r."""\n'
)
TEST = "def check(candidate):\n    assert candidate(2) == math.pi * _square(2)\n"
PROBLEM = he.Problem("Toy/0", PROMPT, "area", TEST)
BODY = "    return math.pi * r * r\n"
FULL = "def area(r):\n    return math.pi * r * r\n"


def test_completion_mode_program_is_prompt_plus_body_and_the_tests_call_check():
    c = he.build_check(PROBLEM, BODY, "completion")
    assert c.candidate == PROMPT + BODY
    assert c.test == TEST + "\n\ncheck(area)\n"
    assert c.entry_point == "area"
    assert c.context == PROMPT + "\n    pass\n"


def test_chat_mode_places_a_full_function_after_the_closed_stub_and_appends_a_body():
    assert he.build_check(PROBLEM, FULL, "chat").candidate == PROMPT + "\n    pass\n\n\n" + FULL
    with_imports = "import math\n\n" + FULL  # the definition is not on the reply's first line
    got = he.build_check(PROBLEM, with_imports, "chat").candidate
    assert got == PROMPT + "\n    pass\n\n\n" + with_imports
    assert he.build_check(PROBLEM, BODY, "chat").candidate == PROMPT + BODY  # only a body


def test_a_chat_function_after_a_stub_without_docstring_still_compiles():
    """The stub is closed with `pass` whatever the prompt ends with (here a bare signature), and
    a reply whose `def` comes after its imports is still seen as a full function."""
    bare = he.Problem("Toy/1", "def inc(x):\n", "inc", "")
    reply = "import math\n\n\ndef inc(x):\n    return x + math.floor(1.5)\n"
    source = he.build_check(bare, reply, "chat").candidate
    namespace: dict = {}
    exec(compile(source, "<hand-written>", "exec"), namespace)  # our own code, not a model's
    assert namespace["inc"](1) == 2


def test_the_completion_never_reaches_the_trusted_side():
    """The completion is candidate source only: not in the judge's test or context."""
    marker = "    return 0  # FORGED-MARKER\n"
    for mode in ("completion", "chat"):
        c = he.build_check(PROBLEM, marker, mode)
        assert "FORGED-MARKER" in c.candidate
        assert "FORGED-MARKER" not in c.test and "FORGED-MARKER" not in c.context
        assert c.entry_point == "area"


def _judged(check, answer) -> dict:
    """The trusted judge on `check`, its calls answered by `answer` on real pipes (the stand-in
    for the sandboxed candidate process, speaking sandbox_wire frames)."""
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()

    def candidate() -> None:
        write_frame(resp_w, {"ready": True})
        while (request := read_frame(req_r)) is not None:
            value = answer(*decode(request["args"]), **decode(request["kwargs"]))
            write_frame(resp_w, {"value": encode(value)})

    thread = threading.Thread(target=candidate, daemon=True)
    thread.start()
    spec = {"context": check.context, "test": check.test, "entry_point": check.entry_point}
    try:
        verdict = judge({**spec, "req_fd": req_w, "resp_fd": resp_r})
    finally:
        os.close(req_w)  # the stand-in sees end of input
        thread.join(5)
        for fd in (req_r, resp_r, resp_w):
            os.close(fd)
    return verdict


def test_the_judge_passes_the_right_answer_and_fails_a_wrong_one():
    """The test uses the prompt's `math` and `_square` (trusted context) and calls check(area),
    where `area` must be the candidate's answers: π·4 passes, 0 is an assertion failure."""
    check = he.build_check(PROBLEM, BODY, "completion")
    assert _judged(check, lambda r: math.pi * r * r) == {
        "passed": True,
        "error": None,
        "detail": None,
        "verdict": "judged",
    }
    wrong = _judged(check, lambda r: 0.0)
    assert (wrong["passed"], wrong["error"], wrong["verdict"]) == (False, "assertion", "judged")


STOP_CASES = [
    ("def ", "def helper():\n    pass\n"),
    ("class ", "class A:\n    pass\n"),
    ("if ", "if __name__ == '__main__':\n    main()\n"),
    ("print(", "print(area(1))\n"),
    ("#", "# usage\n"),
    ("assert ", "assert area(1) == math.pi\n"),
    ('"""', '"""Tests."""\n'),
    ("```", "```\nThat is all.\n"),
]


@pytest.mark.parametrize(("start", "rest"), STOP_CASES, ids=[s for s, _ in STOP_CASES])
def test_every_top_level_statement_ends_a_completion(start, rest):
    assert rest.startswith(start)
    text = BODY + "\n" + rest
    assert he.truncate_at_stops(text, he.stop_sequences("completion")) == BODY


def test_the_earliest_stop_wins_even_a_repeated_one_or_one_at_the_start():
    stops = he.COMPLETION_STOPS
    text = BODY + "\ndef a():\n    pass\n\ndef b():\n    pass\n"
    assert he.truncate_at_stops(text, stops) == BODY  # the first "\ndef ", not the last
    assert he.truncate_at_stops("\ndef helper():\n    pass\n", stops) == ""
    assert he.truncate_at_stops("\n# nothing\n", stops) == ""


def test_chat_replies_keep_every_function_and_stop_at_the_fence_or_demo_code():
    """A chat reply is a whole script: a helper def must not end it; the fence and demo do."""
    script = "def _helper(r):\n    return r * r\n\ndef area(r):\n    return math.pi * _helper(r)"
    stops = he.stop_sequences("chat")
    assert he.truncate_at_stops(script + "\n```\nExplanation", stops) == script
    assert he.truncate_at_stops(script + "\nprint(area(1))\n", stops) == script
    assert he.truncate_at_stops(script + "\n# Test\nassert area(0) == 0\n", stops) == script


def test_extract_code_keeps_indentation_and_takes_the_first_block():
    assert he.extract_code("    return 1\n```\nmore ```x```") == "    return 1\n"
    two = "```python\na = 1\n```\nthen\n```python\nb = 2\n```\n"
    assert he.extract_code(two, prefilled=False) == "a = 1\n"
    unclosed = "Here:\n```python\ndef f():\n    return 1\n"
    assert he.extract_code(unclosed, prefilled=False) == "def f():\n    return 1\n"
