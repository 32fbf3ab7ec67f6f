"""Probes of the compiled-language verdict: a candidate that searches its own program for the
end marker and prints it, then exits 0 before the tests run.

Known weakness (README, evaluation section; sandbox_compiled docstring): HumanEval-X's tests run
inside the candidate's own process, so whatever the harness can print after the tests, code that
inspects its own source or binary can print first. These probes are strict xfails: they document
that the forgery passes today, and they start failing (XPASS -> error) the day the verdict no
longer depends on anything the candidate's process can read, so whoever closes it must flip them
into plain tests. The design that would close it is in benchmarks/humaneval_x's report (tests
and candidate in separate processes, the candidate answering calls over a pipe).
"""

from __future__ import annotations

import pytest

from prunekit.evaluation.benchmarks import get_benchmark
from prunekit.evaluation.sandbox import Limits, run_many
from prunekit.evaluation.toolchains import TOOLCHAINS

FAST = Limits(wall_s=10.0, cpu_s=10)

# each body: find PRUNEKIT_TESTS_DONE_<32 hex> in its own program, print it on its own line, exit 0
FORGE = {
    "cpp": (
        '    FILE* f = fopen("/proc/self/exe", "rb");\n'
        "    std::string b; char c[4096]; size_t n;\n"
        "    while (f && (n = fread(c, 1, sizeof c, f)) > 0) b.append(c, n);\n"
        '    size_t i = b.find(std::string("PRUNEKIT_TESTS_") + "DONE_");\n'
        '    if (i != std::string::npos) printf("\\n%s\\n", b.substr(i, 52).c_str());\n'
        "    fflush(stdout); _Exit(0);\n"
        "}\n"
    ),
    "js": (
        "  const m = require('fs').readFileSync(__filename, 'utf8')"
        ".match(/PRUNEKIT_TESTS_DONE_[0-9a-f]{32}/)\n"
        "  if (m) console.log(m[0])\n"
        "  process.exit(0)\n"
        "}\n"
    ),
}


def _needs(lang: str):
    why = TOOLCHAINS[lang].missing()
    return pytest.mark.skipif(why is not None, reason=why or "")


@pytest.mark.parametrize("lang", [pytest.param(x, marks=_needs(x)) for x in FORGE])
@pytest.mark.xfail(
    strict=True, reason="known: in-process tests let self-inspection forge the marker"
)
def test_a_candidate_printing_the_marker_it_found_in_its_program_fails(lang):
    bench = get_benchmark(f"humaneval-x:{lang}")
    bench.preflight()
    (problem,) = bench.load(1)
    (res,) = run_many([bench.check(problem, FORGE[lang], "completion")], FAST, workers=1)
    assert not res.passed, "the forged marker was accepted"
