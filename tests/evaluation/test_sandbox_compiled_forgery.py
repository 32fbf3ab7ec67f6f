"""Probes of the compiled-language verdict: candidates written to forge a pass.

C++ and JavaScript are judged split (sandbox_split): the tests run in their own sandboxed process
with a client stub, the candidate alone in another with a server stub, and the verdict is the
test process's exit status and end marker. Each probe below is a wrong or hostile candidate that
must fail. Where the attack worked on the old in-process assembly (tests appended to the
candidate's own program, verdict = a marker line), the probe also runs it that way and checks
that it did pass there, so the probe is known to bite.
"""

from __future__ import annotations

import pytest

from prunekit.evaluation import humaneval_x as hx
from prunekit.evaluation.benchmarks import get_benchmark
from prunekit.evaluation.sandbox import Limits, run_many
from prunekit.evaluation.sandbox_compiled import ProgramCheck, new_marker
from prunekit.evaluation.sandbox_split import SplitCheck
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

# Go and Java: the same, from an init()/static initializer that runs before any test; {os} is
# the name the program at hand gives package os (the harness's in-process, the stub's split)
FORGE_GO = """    return false
}

func init() {
    b, _ := {os}.ReadFile("/proc/self/exe")
    s, hex := string(b), "0123456789abcdef"
    for i := 0; i+52 <= len(s); i++ {
        if s[i:i+20] != "PRUNEKIT_TESTS_DONE_" {
            continue
        }
        ok := true
        for _, c := range s[i+20 : i+52] {
            ok = ok && strings.ContainsRune(hex, c)
        }
        if ok {
            fmt.Printf("\\n%s\\n", s[i:i+52])
        }
    }
    {os}.Exit(0)
}
"""
FORGE["java"] = """        return false;
    }
    static {
        for (String name : new String[] {"PrunekitRunner.java", "PrunekitRunner.class"}) {
            try {
                String src = new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get(name)),
                                        java.nio.charset.StandardCharsets.ISO_8859_1);
                java.util.regex.Matcher m =
                    java.util.regex.Pattern.compile("PRUNEKIT_TESTS_DONE_[0-9a-f]{32}").matcher(src);
                if (m.find()) System.out.println("\\n" + m.group());
            } catch (Exception e) {
            }
        }
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }
}
"""

# search everything readable (own binary/source, the work directory, every /proc entry) for a
# marker, then write what it found (or a guess) to every descriptor and to every process's
# stdout it can open, and exit 0: the attack on "writes to the test process's stdout"
EVERYWHERE = {
    "cpp": r"""    std::string hit = "\nPRUNEKIT_TESTS_DONE_00000000000000000000000000000000\n";
    const char* files[] = {"/proc/self/exe", "main.cpp", "run.out", "/proc/1/cmdline",
                           "/proc/1/environ", "/proc/2/cmdline", "/proc/3/cmdline"};
    for (const char* name : files) {
        FILE* f = fopen(name, "rb");
        std::string b; char c[4096]; size_t n;
        while (f && (n = fread(c, 1, sizeof c, f)) > 0) b.append(c, n);
        if (f) fclose(f);
        size_t i = b.find(std::string("PRUNEKIT_TESTS_") + "DONE_");
        if (i != std::string::npos) hit = "\n" + b.substr(i, 52) + "\n";
    }
    for (int fd = 0; fd < 64; ++fd) {
        FILE* f = fdopen(fd, "w");
        if (f) { fputs(hit.c_str(), f); fflush(f); }
    }
    for (int pid = 1; pid < 64; ++pid) {
        std::string path = "/proc/" + std::to_string(pid) + "/fd/1";
        FILE* f = fopen(path.c_str(), "w");
        if (f) { fputs(hit.c_str(), f); fclose(f); }
    }
    fflush(stdout); _Exit(0);
}
""",
    "js": r"""  const fs = require('fs')
  let hit = '\nPRUNEKIT_TESTS_DONE_00000000000000000000000000000000\n'
  for (const name of [__filename, '/proc/1/cmdline', '/proc/1/environ', '/proc/2/cmdline']) {
    try {
      const m = fs.readFileSync(name, 'latin1').match(/PRUNEKIT_TESTS_DONE_[0-9a-f]{32}/)
      if (m) hit = '\n' + m[0] + '\n'
    } catch (e) {}
  }
  for (let fd = 0; fd < 64; fd++) { try { fs.writeSync(fd, hit) } catch (e) {} }
  for (let pid = 1; pid < 64; pid++) {
    try { fs.writeFileSync('/proc/' + pid + '/fd/1', hit) } catch (e) {}
  }
  process.exit(0)
}
""",
}

# wrong answers made to look right to the tests: C++ turns the tests' asserts off (a macro the
# test code would expand), JavaScript replaces console.assert; both return the wrong value
NEUTER = {
    "cpp": "    return false;\n}\n#include <assert.h>\n#define __assert_fail(...) ((void)0)\n",
    "js": "  return false\n}\nconsole.assert = () => {}\n",
}

# Go: a wrong answer, and an init() that tells the test binary to run no test at all;
# Java: a wrong answer, and a shutdown hook that, when the failed test exits 1, prints the
# marker it found in the runner's class file and halts with status 0
NEUTER_GO = """    return false
}

func init() {
    {os}.Args = append({os}.Args, "-test.run=^$")
}
"""
NEUTER["java"] = """        return false;
    }
    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                String src = new String(java.nio.file.Files.readAllBytes(
                    java.nio.file.Paths.get("PrunekitRunner.class")),
                    java.nio.charset.StandardCharsets.ISO_8859_1);
                java.util.regex.Matcher m =
                    java.util.regex.Pattern.compile("PRUNEKIT_TESTS_DONE_[0-9a-f]{32}").matcher(src);
                if (m.find()) System.out.println("\\n" + m.group());
            } catch (Exception e) {
            }
            System.out.flush();
            Runtime.getRuntime().halt(0);
        }));
    }
}
"""

# JavaScript: objects that try to compare equal to anything (a Proxy over a function, an object
# whose conversions answer whatever is asked)
EQUAL_TO_ALL = (
    "  return new Proxy(function () {}, { get: () => () => true, apply: () => true })\n}\n",
    "  return { valueOf: () => true, toString: () => 'true', [Symbol.toPrimitive]: () => true }\n"
    "}\n",
)


def _needs(lang: str):
    why = TOOLCHAINS[lang].missing()
    return pytest.mark.skipif(why is not None, reason=why or "")


def _checks(lang: str, completions: list[str]):
    bench = get_benchmark(f"humaneval-x:{lang}")
    bench.preflight()
    (problem,) = bench.load(1)
    return problem, [bench.check(problem, c, "completion") for c in completions]


def _in_process(lang: str, problem, completion: str) -> ProgramCheck:
    """The old assembly: tests appended to the candidate's program, verdict by marker."""
    marker = new_marker()
    files = hx.ASSEMBLERS[lang](problem, completion, marker)
    return TOOLCHAINS[lang].program(files, marker)


def _both(probes: dict, lang: str) -> tuple[str, str]:
    """The probe's text for the split run and for the old in-process assembly."""
    if lang == "go":  # package os by the name each program imports it under
        return probes["go"].replace("{os}", "prunekitwos"), probes["go"].replace(
            "{os}", "prunekitos"
        )
    return probes[lang], probes[lang]


FORGE["go"], NEUTER["go"] = FORGE_GO, NEUTER_GO
LANGS = [pytest.param(x, marks=_needs(x)) for x in ("cpp", "js", "go", "java")]


@pytest.mark.parametrize("lang", LANGS)
def test_a_candidate_printing_the_marker_it_found_in_its_program_fails(lang):
    split_text, old_text = _both(FORGE, lang)
    problem, checks = _checks(lang, [split_text])
    assert isinstance(checks[0], SplitCheck)
    old = _in_process(lang, problem, old_text)
    split, in_process = run_many([checks[0], old], FAST, workers=2)
    assert in_process.passed, "the probe no longer forges the old in-process verdict"
    assert not split.passed and split.error == "exit", (split.error, split.detail)


@pytest.mark.parametrize("lang", LANGS[:2])
def test_a_candidate_writing_a_marker_everywhere_it_can_fails(lang):
    _, checks = _checks(lang, [EVERYWHERE[lang]])
    (res,) = run_many(checks, FAST, workers=1)
    assert not res.passed, (res.error, res.detail)
    # it stops answering: exits, or garbles its answer pipe, or node dies of a write into one
    # of its own descriptors; which one comes first varies
    assert res.error in ("exit", "bad_return", "killed"), (res.error, res.detail)


@pytest.mark.parametrize("lang", LANGS)
def test_a_wrong_candidate_that_turns_off_the_asserts_fails(lang):
    split_text, old_text = _both(NEUTER, lang)
    problem, checks = _checks(lang, [split_text])
    old = _in_process(lang, problem, old_text)
    split, in_process = run_many([checks[0], old], FAST, workers=2)
    assert in_process.passed, "the probe no longer forges the old in-process verdict"
    assert not split.passed and split.error == "assertion", (split.error, split.detail)


@pytest.mark.skipif(TOOLCHAINS["js"].missing() is not None, reason="node missing")
def test_js_objects_that_try_to_equal_everything_cannot_be_sent():
    _, checks = _checks("js", list(EQUAL_TO_ALL))
    results = run_many(checks, FAST, workers=2)
    assert [r.error for r in results] == ["bad_return", "bad_return"], [
        (r.error, r.detail) for r in results
    ]
    assert all("cannot be sent" in r.detail for r in results)


@pytest.mark.skipif(TOOLCHAINS["cpp"].missing() is not None, reason="g++ missing")
def test_cpp_any_holding_a_foreign_type_cannot_be_sent():
    """CPP/137 returns boost::any: a candidate's own type inside it (one that might compare
    equal to anything) is not a value the wire carries, so the answer is a failure."""
    bench = get_benchmark("humaneval-x:cpp")
    problem = bench.load()[137]
    body = "    struct Any { bool operator==(int) const { return true; } };\n    return Any();\n}\n"
    (res,) = run_many([bench.check(problem, body, "completion")], FAST, workers=1)
    assert not res.passed and res.error == "bad_return", (res.error, res.detail)
    assert "cannot be sent" in res.detail
