"""HumanEval-X (Zheng et al. 2023): the 164 HumanEval problems in C++, Java, JavaScript, Go and
Python, as registered benchmarks `humaneval-x:<lang>` on the generic runner.

The data is vendored under `data/humaneval_x/` (see its README). A candidate program is
assembled as HumanEval-X's own evaluation does: prompt + completion + the problem's test, with
the standard includes C++ prompts lack, and for Go the prompt's import block replaced by the
helper packages the code actually names (Go rejects unused imports). Each program also gets a
small harness that prints a per-run marker after the last test (see `sandbox_compiled`).
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from prunekit.errors import PrunekitError
from prunekit.evaluation.benchmarks import CodeBenchmark
from prunekit.evaluation.runner import truncate_at_stops
from prunekit.evaluation.sandbox import Check

DATA_DIR = Path(__file__).parent / "data" / "humaneval_x"
# the standard headers HumanEval-X adds to a C++ program when its prompt lacks them
CPP_INCLUDES = (
    "#include<stdlib.h>",
    "#include<algorithm>",
    "#include<math.h>",
    "#include<stdio.h>",
    "#include<vector>",
    "#include<string>",
    "#include<climits>",
    "#include<cstring>",
    "#include<iostream>",
)
# the packages HumanEval-X imports for Go code that names them (`strings.` -> "strings")
GO_PACKAGES = (
    "math",
    "strings",
    "fmt",
    "strconv",
    "time",
    "bytes",
    "regexp",
    "sort",
    "math/rand",
    "crypto/md5",
)
PY_STOPS = ("\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#", "\nassert ", '\n"""', "\n```")
CLOSE = "\n}"  # braced languages: the solution ends at the first `}` in column 0 (kept)


@dataclass(frozen=True)
class Language:
    """How one HumanEval-X language is named, fenced and stopped."""

    key: str  # registry suffix and data file name
    display: str
    fence: str  # the markdown code-fence tag

    @property
    def braced(self) -> bool:
        return self.key != "python"


LANGUAGES = {
    "cpp": Language("cpp", "C++", "cpp"),
    "java": Language("java", "Java", "java"),
    "js": Language("js", "JavaScript", "javascript"),
    "go": Language("go", "Go", "go"),
    "python": Language("python", "Python", "python"),
}

CHAT_INSTRUCTION = (
    "Complete the following {display} code so that the function does what its comment "
    "describes and passes its tests. Reply with the completed code in one markdown code "
    "block.\n```{fence}\n{prompt}\n```\n"
)
CHAT_RESPONSE_PREFIX = "```{fence}\n{prompt}"


@dataclass(frozen=True)
class Problem:
    """One HumanEval-X problem; `fields` keeps the language's extra columns (Go's imports)."""

    task_id: str
    prompt: str
    test: str
    canonical_solution: str
    declaration: str
    fields: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str:
        return dict(self.fields).get(key, "")


def language(key: str) -> Language:
    """The language for `key`; an unknown one lists the valid names."""
    if key not in LANGUAGES:
        raise PrunekitError(
            f"unknown HumanEval-X language '{key}'; choose one of: {', '.join(LANGUAGES)}"
        )
    return LANGUAGES[key]


@lru_cache(maxsize=8)
def _rows(key: str) -> tuple[dict, ...]:
    path = DATA_DIR / f"humaneval_{key}.jsonl.gz"
    if not path.is_file():
        raise PrunekitError(f"HumanEval-X data missing: {path} (reinstall prunekit)")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh if line.strip())


def load_problems(key: str, limit: int | None = None) -> list[Problem]:
    """The problems of one language in file order; `limit` keeps the first K (K >= 1)."""
    if limit is not None and limit < 1:
        raise PrunekitError(f"--limit must be a positive number of problems, got {limit}")
    extra = ("import", "test_setup")
    problems = [
        Problem(
            r["task_id"],
            r["prompt"],
            r["test"],
            r.get("canonical_solution", ""),
            r.get("declaration", ""),
            tuple((k, r[k]) for k in extra if k in r),
        )
        for r in _rows(language(key).key)
    ]
    return problems[:limit] if limit else problems


def cut_completion(text: str, lang: Language) -> str:
    """The code of one generation: up to a closing fence, then (braced languages) through the
    first `}` in column 0, which closes the function (and Java's class)."""
    if not lang.braced:
        return truncate_at_stops(text, PY_STOPS)
    text = text.split("\n```", 1)[0]
    i = ("\n" + text).find(CLOSE)
    return text if i == -1 else text[: i + 1] + "\n"


def _cpp_includes(problem: Problem) -> str:
    return "".join(s + "\n" for s in CPP_INCLUDES if s not in problem.prompt) + "\n"


def _cpp_tests(problem: Problem, marker: str) -> str:
    """The problem's test with its main() renamed, and a main() that prints the marker after."""
    test, n = re.subn(r"\bint\s+main\s*\(", "int prunekit_tests(", problem.test, count=1)
    if n != 1 or "}" not in test:
        raise PrunekitError(f"{problem.task_id}: its test has no main() to wrap")
    end = test.rindex("}")
    test = test[:end] + "    return 0;\n" + test[end:]
    harness = (
        "\n#include <cstdio>\nint main() {\n    prunekit_tests();\n"
        f'    std::printf("\\n%s\\n", "{marker}");\n    return 0;\n}}\n'
    )
    return test + harness


def _cpp_program(problem: Problem, completion: str, marker: str) -> dict[str, str]:
    source = (
        _cpp_includes(problem) + problem.prompt + completion + "\n" + _cpp_tests(problem, marker)
    )
    return {"main.cpp": source}


def _java_runner(marker: str) -> str:
    """PrunekitRunner: the tests' Main, then the marker (only if Main returned)."""
    return (
        "public class PrunekitRunner {\n"
        "    public static void main(String[] args) throws Throwable {\n"
        "        Main.main(args);\n"
        f'        System.out.println("\\n{marker}");\n'
        "        System.out.flush();\n    }\n}\n"
    )


def _java_program(problem: Problem, completion: str, marker: str) -> dict[str, str]:
    return {
        "Main.java": problem.prompt + completion + "\n" + problem.test,
        "PrunekitRunner.java": _java_runner(marker),
    }


def _js_program(problem: Problem, completion: str, marker: str) -> dict[str, str]:
    source = problem.prompt + completion + "\n" + problem.test + f'\nconsole.log("{marker}")\n'
    return {"test.js": source}


def go_imports(problem: Problem, completion: str) -> str:
    """An import block for the helper packages the code or the test names and the test setup
    lacks. (HumanEval-X looks at the completion only, so a correct body that does not itself
    use `math` fails to compile where the test calls math.Abs: Go/2, 4, 44 and 151)"""
    setup = problem.get("test_setup")
    code = problem.declaration + completion + "\n" + problem.test
    wanted = [
        p for p in GO_PACKAGES if f'"{p}"' not in setup and p.rsplit("/", 1)[-1] + "." in code
    ]
    return "import (\n" + "".join(f'    "{p}"\n' for p in wanted) + ")\n" if wanted else ""


GO_HARNESS_IMPORTS = '\nimport (\n    prunekitfmt "fmt"\n    prunekitos "os"\n)\n'


def _go_harness(marker: str) -> str:
    """A TestMain that runs the tests and prints the marker if they all passed."""
    return (
        "\nfunc TestMain(m *testing.M) {\n    code := m.Run()\n    if code == 0 {\n"
        f'        prunekitfmt.Printf("\\n%s\\n", "{marker}")\n    }}\n'
        "    prunekitos.Exit(code)\n}\n"
    )


def _go_program(problem: Problem, completion: str, marker: str) -> dict[str, str]:
    prompt = problem.prompt.replace(problem.get("import"), "")
    source = (
        problem.get("test_setup")
        + "\n"
        + go_imports(problem, completion)
        + GO_HARNESS_IMPORTS
        + _go_harness(marker)
        + "\n"
        + prompt
        + completion
        + "\n"
        + problem.test
    )
    return {"main_test.go": source}


ASSEMBLERS = {"cpp": _cpp_program, "java": _java_program, "js": _js_program, "go": _go_program}


def _js_split(problem: Problem, completion: str, marker: str) -> tuple[dict, dict]:
    from prunekit.evaluation import wire_stubs_js as js

    return (
        {"test.js": js.candidate_program(problem.prompt, completion)},
        {"test.js": js.test_program(problem.prompt, problem.test, marker)},
    )


def _cpp_split(problem: Problem, completion: str, marker: str) -> tuple[dict, dict]:
    from prunekit.evaluation import wire_stubs_cpp as cpp

    sig = cpp.signature(problem.prompt)
    head, prompt = _cpp_includes(problem), problem.prompt
    candidate = head + prompt + completion + "\n" + cpp.server(sig, prompt)
    tests = (
        head + prompt[: sig.start] + cpp.client(sig, prompt) + "\n" + _cpp_tests(problem, marker)
    )
    return {"main.cpp": candidate}, {"main.cpp": tests}


def _go_split(problem: Problem, completion: str, marker: str) -> tuple[dict, dict]:
    from prunekit.evaluation import wire_stubs_go as go

    prompt = problem.prompt.replace(problem.get("import"), "")
    sig = go.signature(prompt)
    setup = problem.get("test_setup")
    package = setup.lstrip().split("\n", 1)[0] + "\n"
    if not package.startswith("package "):
        raise go.StubError("the test setup does not start with a package clause")
    own = go.import_block(go.packages(prompt + completion, GO_PACKAGES))
    candidate = (
        package
        + 'import prunekitwtesting "testing"\n'
        + own
        + go.CODEC_IMPORTS
        + "\n"
        + prompt
        + completion
        + "\n"
        + go.server_main(sig)
    )
    helpers = prompt[: sig.start]
    used = go.packages(helpers + "\n" + problem.test, GO_PACKAGES)
    for p in GO_PACKAGES:  # a package the setup imports for the candidate's code (Go/162's md5)
        if p not in used:
            setup = re.sub(rf'^[ \t]*"{re.escape(p)}"[ \t]*\n', "", setup, flags=re.MULTILINE)
    theirs = go.import_block(go.packages(helpers + "\n" + problem.test, GO_PACKAGES, setup))
    tests = (
        setup
        + "\n"
        + theirs
        + GO_HARNESS_IMPORTS
        + go.CODEC_IMPORTS
        + _go_harness(marker)
        + "\n"
        + helpers
        + go.client(sig)
        + "\n"
        + problem.test
    )
    return {"main_test.go": candidate}, {"main_test.go": tests}


def _java_split(problem: Problem, completion: str, marker: str) -> tuple[dict, dict]:
    from prunekit.evaluation import wire_stubs_java as java

    sig = java.signature(problem.prompt)
    candidate = {
        "Main.java": problem.prompt + completion + "\n",
        "PrunekitRunner.java": java.server(sig),
        "PrunekitWire.java": java.codec(),
    }
    tests = {
        "Main.java": problem.prompt[: sig.start] + java.client_method(sig) + "\n" + problem.test,
        "PrunekitRunner.java": _java_runner(marker),
        "PrunekitWire.java": java.codec(),
    }
    return candidate, tests


# languages whose tests run in their own process: (candidate files, test files) per problem
SPLITTERS = {"js": _js_split, "cpp": _cpp_split, "go": _go_split, "java": _java_split}


def split_programs(key: str, problem: Problem, completion: str, marker: str):
    """The candidate's and the tests' files for a split run, or None where this language or
    this problem's declaration has no stubs (then the tests share the candidate's process)."""
    from prunekit.evaluation.wire_stubs_js import StubError

    splitter = SPLITTERS.get(key)
    if splitter is None:
        return None
    try:
        return splitter(problem, completion, marker)
    except StubError:
        return None


def verdict_modes(key: str) -> dict:
    """How each problem of a language is judged: split (the tests in their own process) or
    in_process (the tests in the candidate's process, verdict by end marker), with the task ids
    of the latter (a fallback never goes unreported)."""
    split, in_process = 0, []
    for problem in load_problems(key):
        if split_programs(key, problem, problem.canonical_solution, "M") is None:
            in_process.append(problem.task_id)
        else:
            split += 1
    return {"split": split, "in_process": len(in_process), "in_process_tasks": in_process}


def python_entry_point(problem: Problem) -> str:
    """The function HumanEval-X's Python test checks (its last `check(name)` call)."""
    found = re.findall(r"^check\((\w+)\)", problem.test, re.MULTILINE)
    if not found:
        raise PrunekitError(f"{problem.task_id}: its test never calls check(...)")
    return found[-1]


class HumanEvalX(CodeBenchmark):
    """One HumanEval-X language: `humaneval-x:cpp|java|js|go|python`."""

    size = 164

    def __init__(self, language: str) -> None:
        self.lang = globals()["language"](language)
        self.name = f"humaneval-x:{self.lang.key}"
        self.title = f"HumanEval-X {self.lang.display}"

    @property
    def toolchain(self):
        from prunekit.evaluation.toolchains import TOOLCHAINS

        return TOOLCHAINS.get(self.lang.key)

    def load(self, limit: int | None = None) -> list[Problem]:
        return load_problems(self.lang.key, limit)

    def preflight(self) -> None:
        _rows(self.lang.key)
        if self.toolchain is not None:
            paths = self.toolchain.paths()
            why = self.toolchain.missing()
            if why:
                raise PrunekitError(why)
            if self.lang.key == "go":
                from prunekit.evaluation.toolchains import warm_go_cache

                warm_go_cache(paths["go"])

    def prompt(self, problem: Problem, mode: str, tokenizer) -> str:
        if mode == "completion":
            return problem.prompt
        fence, display = self.lang.fence, self.lang.display
        content = CHAT_INSTRUCTION.format(
            display=display, fence=fence, prompt=problem.prompt.strip()
        )
        messages = [{"role": "user", "content": content}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + CHAT_RESPONSE_PREFIX.format(fence=fence, prompt=problem.prompt)

    def stops(self, mode: str) -> tuple[str, ...]:
        return PY_STOPS if not self.lang.braced else (CLOSE, "\n```")

    def completion(self, text: str, mode: str) -> str:
        return cut_completion(text, self.lang)

    def check(self, problem: Problem, completion: str, mode: str):
        if not self.lang.braced:
            entry = python_entry_point(problem)
            context = problem.prompt + "\n    pass\n"
            return Check(problem.prompt + completion, problem.test, entry, context=context)
        from prunekit.evaluation.sandbox_compiled import new_marker
        from prunekit.evaluation.sandbox_split import SplitCheck

        marker = new_marker()
        split = split_programs(self.lang.key, problem, completion, marker)
        if split is not None:
            cand, tests = split
            return SplitCheck(
                self.toolchain.program(cand, ""), self.toolchain.program(tests, marker)
            )
        files = ASSEMBLERS[self.lang.key](problem, completion, marker)
        return self.toolchain.program(files, marker)

    def prompt_label(self, mode: str) -> str:
        if mode == "completion":
            return f"raw HumanEval-X {self.lang.display} prompt"
        return (
            "chat template + instruction showing the prompt in a code block; reply prefilled "
            f"with an opening ```{self.lang.fence} fence and the prompt, so the model writes "
            "the body"
        )

    @property
    def problems_file(self) -> str:
        return f"humaneval-x-{self.lang.key}_problems.jsonl"

    def identity(self) -> dict:
        if self.toolchain is None:
            verdict = "judged: the tests run in a separate trusted process (as for HumanEval)"
            return {"language": self.lang.display, "verdict": verdict}
        modes = verdict_modes(self.lang.key)
        split = (
            "the tests run in their own sandboxed process, with a client stub in place of the "
            "function; the candidate runs alone in another sandbox with a server stub and "
            "answers each call as JSON data; pass = the test process exits 0 after its last "
            "test (end marker), as its supervisor saw it"
            + (" with nothing on stderr" if self.lang.key == "js" else "")
            + " (see sandbox_split)"
        )
        in_process = (
            "exit status 0 of every stage, seen by the sandbox supervisor, and the run's end "
            "marker printed after the last test"
            + (" and nothing on stderr" if self.lang.key == "js" else "")
            + " (tests share the candidate's process: forgeable, see sandbox_compiled)"
        )
        verdict = split if modes["split"] else in_process
        if modes["split"] and modes["in_process"]:
            verdict += f"; {modes['in_process']} problems fall back to: " + in_process
        return {
            "language": self.lang.display,
            "toolchain": self.toolchain.identity(),
            "verdict": verdict,
            "verdict_modes": modes,
        }
