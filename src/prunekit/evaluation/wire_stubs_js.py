"""JavaScript stubs for a split run (`sandbox_split`): the candidate's server, the tests' client.

Values travel as JSON with tags for what JSON lacks: arrays as arrays; every object as
`{"o": [[key, value], ...]}` (plain objects only: own enumerable keys, in order); `{"n":
"NaN"|"Infinity"|"-Infinity"|"-0"}`; `{"u": 1}` for undefined; `{"b": "<digits>"}` for a
BigInt. Anything else (a function, a Map, a class instance, a Proxy of one) cannot be sent: the
candidate's answer is then `{"bad": ...}`, a failure. The function under test is the prompt's
last `const name = (...) =>`; the test program keeps the prompt's helpers above it.
"""

from __future__ import annotations

import re

from prunekit.evaluation.sandbox_split import BAD_EXIT, GONE_EXIT

HEADER = re.compile(r"^const\s+([A-Za-z_$][\w$]*)\s*=\s*\(", re.MULTILINE)
WIRE = "__prunekit_wire"

CODEC = """
const __prunekit_wire = (() => {
  'use strict';
  const fs = require('fs');
  const IN = Number(process.env.PRUNEKIT_IN_FD), OUT = Number(process.env.PRUNEKIT_OUT_FD);
  const plain = (v) => {
    const p = Object.getPrototypeOf(v);
    return p === Object.prototype || p === null;
  };
  const enc = (v, depth) => {
    if (depth > 500) throw new TypeError('a value nested too deeply');
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
    if (typeof v === 'number') {
      if (Number.isNaN(v)) return {n: 'NaN'};
      if (v === Infinity) return {n: 'Infinity'};
      if (v === -Infinity) return {n: '-Infinity'};
      if (Object.is(v, -0)) return {n: '-0'};
      return v;
    }
    if (v === undefined) return {u: 1};
    if (typeof v === 'bigint') return {b: v.toString()};
    if (typeof v === 'object' && Array.isArray(v)) {
      const out = [];
      for (let i = 0; i < v.length; i++) out.push(enc(v[i], depth + 1));
      return out;
    }
    if (typeof v === 'object' && plain(v)) {
      const out = [];
      for (const k of Object.keys(v)) out.push([String(k), enc(v[k], depth + 1)]);
      return {o: out};
    }
    throw new TypeError('cannot send a value of type ' + typeof v);
  };
  const dec = (v) => {
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map((x) => dec(x));
    if ('n' in v) return Number(v.n);
    if ('u' in v) return undefined;
    if ('b' in v) return BigInt(v.b);
    const out = {};
    for (const [k, x] of v.o) {
      Object.defineProperty(out, k, {value: dec(x), enumerable: true, writable: true,
                                     configurable: true});
    }
    return out;
  };
  let buf = Buffer.alloc(0);
  const chunk = Buffer.alloc(65536);
  const readLine = () => {
    for (;;) {
      const i = buf.indexOf(10);
      if (i >= 0) {
        const line = buf.subarray(0, i).toString('utf8');
        buf = buf.subarray(i + 1);
        return line;
      }
      let n;
      try {
        n = fs.readSync(IN, chunk, 0, chunk.length, null);
      } catch (e) {
        if (e.code === 'EAGAIN') continue;
        if (e.code === 'EOF') return null;
        throw e;
      }
      if (n === 0) return null;
      buf = Buffer.concat([buf, chunk.subarray(0, n)]);
    }
  };
  const send = (text) => {
    const b = Buffer.from(text + '\\n', 'utf8');
    let off = 0;
    while (off < b.length) off += fs.writeSync(OUT, b, off, b.length - off);
  };
  const message = (e) => {
    try {
      return String(e && e.message !== undefined ? e.message : e).slice(0, 300);
    } catch (_) {
      return 'an exception';
    }
  };
  const serve = (fn) => {
    send('{"ready":true}');
    for (;;) {
      const line = readLine();
      if (line === null) break;
      let answer;
      try {
        const value = fn(...dec(JSON.parse(line)));
        try {
          answer = JSON.stringify({value: enc(value, 0)});
        } catch (e) {
          answer = JSON.stringify({bad: message(e)});
        }
      } catch (e) {
        answer = JSON.stringify({raise: message(e)});
      }
      send(answer);
    }
    process.exit(0);
  };
  const die = (code, why) => {
    fs.writeSync(2, 'prunekit: ' + why + '\\n');
    process.exit(code);
  };
  const call = (args) => {
    send(JSON.stringify(enc(args, 0)));
    const line = readLine();
    if (line === null) die(@GONE@, 'the candidate stopped answering');
    const a = JSON.parse(line);
    if ('value' in a) return dec(a.value);
    if ('raise' in a) throw new Error(a.raise);
    if ('bad' in a) die(@BAD@, 'the candidate returned a value that cannot be sent: ' + a.bad);
    die(@GONE@, 'the candidate stopped answering: ' + a.gone);
  };
  return {serve, call};
})();
""".replace("@GONE@", str(GONE_EXIT)).replace("@BAD@", str(BAD_EXIT))


class StubError(ValueError):
    """This problem's declaration cannot be stubbed (the caller falls back, visibly)."""


def entry(prompt: str) -> tuple[str, int]:
    """The function under test (the prompt's last `const name = (`) and where it starts."""
    found = list(HEADER.finditer(prompt))
    if not found:
        raise StubError("no `const name = (...) =>` declaration in the prompt")
    return found[-1].group(1), found[-1].start()


def candidate_program(prompt: str, completion: str) -> str:
    """The candidate's code, then the server answering calls of the function under test."""
    name, _ = entry(prompt)
    return prompt + completion + "\n;" + CODEC + f"{WIRE}.serve({name});\n"


def test_program(prompt: str, test: str, marker: str) -> str:
    """The prompt's helpers, a client in place of the function under test, the tests, and the
    end marker; no line of the candidate's."""
    name, start = entry(prompt)
    client = f"const {name} = (...args) => {WIRE}.call(args);\n"
    return CODEC + prompt[:start] + client + "\n" + test + f'\nconsole.log("{marker}")\n'
