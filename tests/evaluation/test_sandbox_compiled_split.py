"""The split verdict's parts (sandbox_split, wire_stubs_cpp, wire_stubs_js): the relay's frame
check, the signatures the stubs read, the visible fallback, and the codecs' round trips.

The round trips run our own codec (trusted test code, not generated code) straight on g++/node:
values are encoded, passed through the relay's parse-and-reserialise exactly as in a run, and
decoded into the declared types, which must give back the same values (floats bit for bit).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from prunekit.evaluation import humaneval_x as hx
from prunekit.evaluation import wire_stubs_cpp as cpp
from prunekit.evaluation import wire_stubs_go as go
from prunekit.evaluation import wire_stubs_java as java
from prunekit.evaluation import wire_stubs_js as js
from prunekit.evaluation.benchmarks import get_benchmark
from prunekit.evaluation.sandbox import Limits, run_many
from prunekit.evaluation.sandbox_compiled import ProgramCheck
from prunekit.evaluation.sandbox_split import SplitCheck, canonical_frame
from prunekit.evaluation.toolchains import TOOLCHAINS


def test_a_call_frame_must_be_a_json_list_and_comes_back_canonical():
    assert canonical_frame(b'[1, "\xc3\xa9", NaN, -0.0, [true]]', None) == (
        b'[1,"\\u00e9",NaN,-0.0,[true]]\n'
    )
    for bad in (b'{"a": 1}', b"[1,", b"\xff", b"[" * 100000 + b"]" * 100000):
        with pytest.raises(ValueError):
            canonical_frame(bad, None)


def test_an_answer_frame_is_one_value_raise_or_bad():
    keys = ("value", "raise", "bad")
    assert canonical_frame(b'{"value": {"t": "int", "v": 1}}', keys) == (
        b'{"value":{"t":"int","v":1}}\n'
    )
    assert canonical_frame(b'{"raise": "boom"}', keys) == b'{"raise":"boom"}\n'
    for bad in (
        b'{"value": 1, "raise": "x"}',  # two keys
        b'{"gone": "x"}',  # only the relay says gone
        b'{"raise": 3}',  # an error without a message
        b"[1]",
        b"true",
    ):
        with pytest.raises(ValueError):
            canonical_frame(bad, keys)


def test_every_cpp_and_js_signature_has_stubs():
    for p in hx.load_problems("cpp"):
        sig = cpp.signature(p.prompt)
        assert f"{sig.name}(" in p.test.replace(" (", "("), p.task_id
        assert p.prompt[sig.start :].startswith(sig.returns.split()[0]), p.task_id
    for p in hx.load_problems("js"):
        name, start = js.entry(p.prompt)
        assert name in p.test and p.prompt[start:].startswith(f"const {name}"), p.task_id


def test_every_go_and_java_signature_has_stubs():
    for p in hx.load_problems("go"):
        prompt = p.prompt.replace(p.get("import"), "")
        sig = go.signature(prompt)
        assert f"{sig.name}(" in p.test and prompt[sig.start :].startswith("func " + sig.name)
        assert len(sig.names) >= 1, p.task_id
    for p in hx.load_problems("java"):
        sig = java.signature(p.prompt)
        assert f".{sig.name}(" in p.test, p.task_id
        assert len(sig.types) == len(sig.names) >= 1, p.task_id


def test_go_signature_reading():
    sig = go.signature("// x\nfunc F(a, b int, m map[string][]int) (int, interface{}) {\n")
    assert (sig.name, sig.names, sig.variadic) == ("F", ("a", "b", "m"), False)
    assert sig.results == "(int, interface{})"
    sig = go.signature(hx.load_problems("go")[105].prompt)  # `)[]string {`: no space
    assert (sig.name, sig.results) == ("ByLength", "[]string")
    assert go.signature("func V(xs ...float64) [2]bool {\n").variadic
    for ok in ("map[rune]int", "[][2]interface{}", "map[interface {}]interface{}", "any"):
        go.check_type(ok)
    for bad in ("*int", "chan int", "func() int", "struct{}", "error", "map[string]Foo"):
        with pytest.raises(js.StubError):
            go.check_type(bad)
    with pytest.raises(js.StubError):
        go.signature("func F(int, string) bool {\n")  # unnamed: nothing to forward


def test_java_signature_reading():
    sig = java.signature(hx.load_problems("java")[95].prompt)
    assert (sig.returns, sig.name, sig.types) == (
        "boolean",
        "checkDictCase",
        ("Map<Object, Object>",),
    )
    assert java.raw_class("Map<Object, Object>") == "Map.class"
    for ok in ("List<Optional<Integer>>", "int[]", "Map<String, List<Integer>>", "Object"):
        java.check_type(ok)
    for bad in ("Set<Integer>", "List<int>", "Foo", "Map<String>", "List<?>", "Iterator<Integer>"):
        with pytest.raises(js.StubError):
            java.check_type(bad)


def test_go_test_program_drops_setup_imports_only_the_candidate_used():
    p = hx.load_problems("go")[162]  # its setup imports crypto/md5 for the candidate's code
    cand, tests = hx.split_programs("go", p, p.canonical_solution, "M")
    assert '"crypto/md5"' in cand["main_test.go"] and '"crypto/md5"' not in tests["main_test.go"]
    assert p.canonical_solution not in tests["main_test.go"]


def test_cpp_signature_reading():
    sig = cpp.signature(hx.load_problems("cpp")[52].prompt)  # `vector<int>l, int t`: no space
    assert (sig.returns, sig.name, sig.params) == (
        "bool",
        "below_threshold",
        ("vector<int>", "int"),
    )
    assert cpp.value_type("const vector<vector<int>> &") == "vector<vector<int>>"
    assert cpp.value_type("map<char, vector<string>>") == "map<char, vector<string>>"
    for bad in ("Foo", "void*", "set<int>", "map<int>", "vector<Foo>", "std::function<int()>"):
        with pytest.raises(js.StubError):
            cpp.value_type(bad)
    with pytest.raises(js.StubError):
        cpp.signature("struct P { int x; };\nP mirror(P p){\n")


def test_a_problem_without_stubs_falls_back_visibly(monkeypatch):
    real = hx.load_problems("cpp", 2)
    odd = hx.Problem("CPP/odd", "struct P { int x; };\nP mirror(P p){\n", real[0].test, "", "")
    assert hx.split_programs("cpp", odd, "return p;}\n", "M") is None
    assert isinstance(hx.split_programs("cpp", real[0], "}", "M"), tuple)
    bench = get_benchmark("humaneval-x:cpp")
    if TOOLCHAINS["cpp"].missing() is None:
        assert isinstance(bench.check(odd, "return p;}\n", "completion"), ProgramCheck)
        assert isinstance(bench.check(real[0], "}", "completion"), SplitCheck)
    monkeypatch.setattr(hx, "load_problems", lambda key, limit=None: [real[0], odd, real[1]])
    assert hx.verdict_modes("cpp") == {"split": 2, "in_process": 1, "in_process_tasks": ["CPP/odd"]}


CPP_ROUND_TRIP = r"""
#include <boost/any.hpp>
#include <list>
#include <iostream>
#include <limits>
typedef std::list<boost::any> list_any;
@CODEC@
using namespace prunekit_wire;
template <class T> std::string enc(const T& v) { Out o; dump(o, v); return o.s; }
template <class T> T dec(const std::string& s) { T out; load(Parser(s).all(), out); return out; }
template <class T> bool same_real(T a, T b) {
  if (std::isnan(a)) return std::isnan(b);
  return std::memcmp(&a, &b, sizeof a) == 0;
}
template <class T> bool same_reals(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) if (!same_real(a[i], b[i])) return false;
  return true;
}
template <class T> bool fails(const std::string& s) {
  try { dec<T>(s); } catch (const Bad&) { return true; }
  return false;
}
int main(int argc, char** argv) {
  std::vector<float> fs = {0.1f, -0.0f, NAN, INFINITY, -INFINITY, 1e-45f, 3.4028235e38f,
                           16777217.0f, 1.0f / 3.0f};
  std::vector<double> ds = {0.1, -0.0, 5e-324, 1.7976931348623157e308, 2.0, 1.0 / 3.0};
  std::string bytes;
  for (int c = 0; c < 256; ++c) bytes += static_cast<char>(c);
  std::map<char, int> hist = {{'a', 2}, {'\0', -1}, {'\xff', INT_MAX}};
  std::vector<std::vector<int>> grid = {{}, {INT_MIN, 0, INT_MAX}};
  std::vector<bool> flags = {true, false, true};
  std::vector<long long> longs = {LLONG_MIN, LLONG_MAX};
  std::map<std::string, std::string> dict = {{"k\"ey", "v\\al"}, {"", "\n"}};
  list_any anys = {boost::any(4), boost::any(), boost::any(23.2), boost::any(std::string("x")),
                   boost::any('c'), boost::any(2.5f)};
  if (std::string(argv[1]) == "enc") {
    std::cout << enc(fs) << "\n" << enc(ds) << "\n" << enc(bytes) << "\n" << enc(hist) << "\n"
              << enc(grid) << "\n" << enc(flags) << "\n" << enc(longs) << "\n" << enc(dict)
              << "\n" << enc(anys) << "\n";
    return 0;
  }
  std::string l[9];
  for (int i = 0; i < 9; ++i) std::getline(std::cin, l[i]);
  list_any back = dec<list_any>(l[8]);
  std::vector<boost::any> b(back.begin(), back.end());
  bool ok = same_reals(dec<std::vector<float>>(l[0]), fs) &&
            same_reals(dec<std::vector<double>>(l[1]), ds) && dec<std::string>(l[2]) == bytes &&
            dec<std::map<char, int>>(l[3]) == hist &&
            dec<std::vector<std::vector<int>>>(l[4]) == grid &&
            dec<std::vector<bool>>(l[5]) == flags && dec<std::vector<long long>>(l[6]) == longs &&
            dec<std::map<std::string, std::string>>(l[7]) == dict && b.size() == 6 &&
            boost::any_cast<int>(b[0]) == 4 && b[1].empty() &&
            boost::any_cast<double>(b[2]) == 23.2 && boost::any_cast<std::string>(b[3]) == "x" &&
            boost::any_cast<char>(b[4]) == 'c' && boost::any_cast<float>(b[5]) == 2.5f;
  bool strict = fails<int>("1.5") && fails<int>("2147483648") && fails<int>("true") &&
                fails<bool>("1") && fails<std::string>("\"\\u0100\"") && fails<char>("\"ab\"") &&
                fails<std::vector<int>>("{}") && fails<float>("\"1\"") &&
                fails<unsigned>("-1") && fails<boost::any>("{\"t\":\"void*\",\"v\":1}");
  std::cout << (ok ? "same" : "DIFFERENT") << " " << (strict ? "strict" : "LOOSE") << "\n";
  return 0;
}
"""


def _relay(line: str) -> str:
    """A value's encoding as the test program receives it: inside an answer, via the relay."""
    frame = canonical_frame(('{"value":' + line + "}").encode(), ("value",))
    return json.dumps(json.loads(frame)["value"], separators=(",", ":"))


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ missing")
def test_cpp_codec_round_trips_through_the_relay(tmp_path):
    src = CPP_ROUND_TRIP.replace("@CODEC@", cpp._codec("#include<boost/any.hpp>"))
    (tmp_path / "rt.cpp").write_text(src)
    build = subprocess.run(
        ["g++", "-std=c++11", "-O0", "-w", "-o", "rt", "rt.cpp"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    enc = subprocess.run(["./rt", "enc"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    lines = enc.stdout.splitlines()
    assert len(lines) == 9 and lines[1].startswith("[0.10000000000000001,-0.0,")
    back = "".join(_relay(x) + "\n" for x in lines)
    dec = subprocess.run(
        ["./rt", "dec"], cwd=tmp_path, input=back, capture_output=True, text=True, timeout=60
    )
    assert dec.stdout.split() == ["same", "strict"], (dec.stdout, dec.stderr)


JS_ROUND_TRIP = r"""
@CODEC@
const values = [NaN, -0, 0, Infinity, -Infinity, undefined, null, 1e21, 2 ** 53 + 2, 0.1 + 0.2,
  'lone \ud800 é \u0000', 12345678901234567890n, [1, [2, [undefined]]],
  JSON.parse('{"__proto__": 1, "b": [true, {"c": -0}]}'), Object.create(null)];
const same = (a, b) => {
  if (typeof a !== typeof b) return false;
  if (typeof a === 'number' || typeof a !== 'object' || a === null) return Object.is(a, b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && same(a[k], b[k]));
};
if (process.argv[2] === 'enc') {
  for (const v of values) console.log(JSON.stringify(__prunekit_wire.enc(v, 0)));
} else {
  const lines = require('fs').readFileSync(0, 'utf8').trim().split('\n');
  const back = lines.map((l) => __prunekit_wire.dec(JSON.parse(l)));
  const ok = values.every((v, i) => same(v, back[i]));
  const own = Object.prototype.hasOwnProperty.call(back[13], '__proto__');
  let refused = 0;
  for (const v of [() => 1, new Map(), new (class A {})(), Symbol('s'),
                   new Proxy(function () {}, {})]) {
    try { __prunekit_wire.enc(v, 0) } catch (e) { refused += 1 }
  }
  console.log(ok && own ? 'same' : 'DIFFERENT', refused);
}
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node missing")
def test_js_codec_round_trips_through_the_relay(tmp_path):
    codec = js.CODEC.replace("return {serve, call};", "return {serve, call, enc, dec};")
    (tmp_path / "rt.js").write_text(JS_ROUND_TRIP.replace("@CODEC@", codec))
    enc = subprocess.run(
        ["node", "rt.js", "enc"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    lines = enc.stdout.splitlines()
    assert len(lines) == 15, enc.stderr
    back = "".join(_relay(x) + "\n" for x in lines)
    dec = subprocess.run(
        ["node", "rt.js", "dec"], cwd=tmp_path, input=back, capture_output=True, text=True
    )
    assert dec.stdout.split() == ["same", "5"], (dec.stdout, dec.stderr)


@pytest.mark.parametrize(
    "lang",
    [
        pytest.param(
            x,
            marks=pytest.mark.skipif(
                TOOLCHAINS[x].missing() is not None, reason="toolchain missing"
            ),
        )
        for x in ("cpp", "js", "go", "java")
    ],
)
def test_a_raise_reaches_the_tests_as_an_exception_and_fails(lang):
    body = {
        "cpp": '    throw std::runtime_error("nope");\n}\n',
        "js": "  throw new Error('nope')\n}\n",
        "go": '    panic("nope")\n}\n',
        "java": '        throw new IllegalStateException("nope");\n    }\n}\n',
    }[lang]
    bench = get_benchmark(f"humaneval-x:{lang}")
    (problem,) = bench.load(1)
    (res,) = run_many([bench.check(problem, body, "completion")], Limits(), workers=1)
    assert not res.passed and res.error == "exception" and "nope" in res.detail
    assert res.verdict == "split-process"
