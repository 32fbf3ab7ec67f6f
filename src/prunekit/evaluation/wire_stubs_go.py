"""Go stubs for a split run (`sandbox_split`): the candidate's server, the tests' client.

The function under test is the prompt's last `func Name(...) ... {`; its parameter and result
types must be built from bool, the sized and unsized ints and uints (rune, byte), float32/64,
string, interface{} (any), slices, arrays and maps of them. Anything else raises StubError and
the caller falls back visibly. Both stubs are generic over the function's reflect type: the
server decodes each call into the parameter types and calls the candidate's function; the
client is a function with the prompt's own header whose body forwards over the wire. Values
as JSON: ints as integers; floats always with a point or exponent (shortest text that parses
back to the same float64, so bit for bit; NaN/Infinity as Python's json writes them); a string
as its bytes (each byte outside printable ASCII as \\u00XX); nil slices and maps as null,
others as arrays (a map as [key, value] pairs); an interface value as {"t": type, "v": value}
with its dynamic type spelled structurally ("int", ["slice", t], ["array", n, t], ["map", k,
v], "any"), so a named type cannot be sent. A value that does not fit fails the decode: in the
test program that is a failure of the candidate (BAD_EXIT).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prunekit.evaluation.sandbox_split import BAD_EXIT, GONE_EXIT
from prunekit.evaluation.wire_stubs_cpp import HARNESS_EXIT
from prunekit.evaluation.wire_stubs_js import StubError

HEADER = re.compile(r"^func\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
BASIC = {
    "bool",
    "int",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
    "string",
    "rune",
    "byte",
    "interface{}",
    "any",
}
# comments and literals, blanked before looking for the packages code names
NOT_CODE = re.compile(
    r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|`[^`]*`|'(?:\\.|[^'\\\n])*'", re.DOTALL
)


@dataclass(frozen=True)
class Signature:
    """The function under test: name, its parameter list and result text as the prompt spells
    them, the parameter names, whether it is variadic, and where its header starts."""

    name: str
    params: str
    results: str
    names: tuple[str, ...]
    variadic: bool
    start: int


def _norm(text: str) -> str:
    return re.sub(r"interface\s*\{\s*\}", "interface{}", " ".join(text.split()))


def _split_top(text: str) -> list[str]:
    """`text` split at commas outside brackets and braces."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch in "[{(") - (ch in "]})")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def check_type(text: str) -> None:
    """StubError unless the wire carries values of the Go type `text`."""
    t = _norm(text).replace(" ", "")
    if t in BASIC:
        return
    if t.startswith("[]"):
        return check_type(t[2:])
    m = re.fullmatch(r"\[(\d+)\](.+)", t)
    if m:
        return check_type(m.group(2))
    if t.startswith("map["):
        depth = 0
        for i, ch in enumerate(t[3:], start=3):
            depth += (ch == "[") - (ch == "]")
            if depth == 0:
                check_type(t[4:i])
                return check_type(t[i + 1 :])
    raise StubError(f"no wire format for the Go type '{text.strip()}'")


def _fields(text: str, need_names: bool) -> tuple[list[str], list[str], bool]:
    """(names, types, variadic) of a parameter or result list; names empty where unnamed."""
    parts = [_norm(p) for p in _split_top(text)] if text.strip() else []
    named = any(" " in p.replace("interface{}", "") for p in parts)
    if not named:
        if need_names and parts:
            raise StubError("the function's parameters have no names")
        for p in parts:
            check_type(p.removeprefix("..."))
        return [], parts, bool(parts) and parts[-1].startswith("...")
    names, types, pending = [], [], []
    for p in parts:
        bits = p.split(" ", 1)
        if len(bits) == 1:
            pending.append(bits[0])
            continue
        for name in (*pending, bits[0]):
            names.append(name)
            types.append(bits[1])
        pending = []
    if pending:
        raise StubError("cannot read the parameter list")
    for name, t in zip(names, types):
        if not re.fullmatch(r"[A-Za-z_]\w*", name) or name == "_":
            raise StubError(f"cannot forward the parameter '{name}'")
        check_type(t.removeprefix("..."))
    return names, types, bool(types) and types[-1].startswith("...")


def signature(prompt: str) -> Signature:
    """The prompt's last `func Name(...) results {` header (the one the completion finishes)."""
    found = list(HEADER.finditer(prompt))
    if not found:
        raise StubError("no func header in the prompt")
    m = found[-1]
    depth, i = 1, m.end()
    while i < len(prompt) and depth:
        depth += (prompt[i] == "(") - (prompt[i] == ")")
        i += 1
    if depth:
        raise StubError("an unclosed parameter list")
    params = prompt[m.end() : i - 1]
    line_end = prompt.find("\n", i)
    rest = prompt[i : len(prompt) if line_end == -1 else line_end].strip()
    if not rest.endswith("{"):
        raise StubError("the header does not end with `{`")
    results = rest[:-1].strip()
    names, _, variadic = _fields(params, need_names=True)
    inner = results[1:-1] if results.startswith("(") and results.endswith(")") else results
    if results.startswith("(") and not results.endswith(")"):
        raise StubError("cannot read the results")
    _fields(inner, need_names=False)
    return Signature(m.group(1), params.strip(), results, tuple(names), variadic, m.start())


def packages(code: str, known: tuple[str, ...], have: str = "") -> list[str]:
    """The packages of `known` that `code` names outside comments and literals, less those
    `have` (an import block) already imports."""
    bare = NOT_CODE.sub(" ", code)
    return [
        p
        for p in known
        if f'"{p}"' not in have and re.search(rf"(?<![\w.]){p.rsplit('/', 1)[-1]}\.", bare)
    ]


def import_block(pkgs: list[str]) -> str:
    return "import (\n" + "".join(f'    "{p}"\n' for p in pkgs) + ")\n" if pkgs else ""


CODEC_IMPORTS = """
import (
    prunekitwfmt "fmt"
    prunekitwmath "math"
    prunekitwos "os"
    prunekitwreflect "reflect"
    prunekitwstrconv "strconv"
)
"""

CODEC = r"""
type prunekitwBad struct{ why string }

func prunekitwFail(why string) { panic(prunekitwBad{why}) }

// a parsed JSON value: 'n' null, 'b' bool, 'd' number, 's' string, 'a' array, 'o' object
// (items: key, value, key, value ...)
type prunekitwNode struct {
	kind  byte
	b     bool
	text  string
	items []prunekitwNode
}

type prunekitwParser struct {
	s string
	i int
}

func (p *prunekitwParser) ws() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *prunekitwParser) expect(c byte) {
	p.ws()
	if p.i >= len(p.s) || p.s[p.i] != c {
		prunekitwFail("expected " + string(c))
	}
	p.i++
}

func (p *prunekitwParser) lit(w string) bool {
	if len(p.s)-p.i >= len(w) && p.s[p.i:p.i+len(w)] == w {
		p.i += len(w)
		return true
	}
	return false
}

func (p *prunekitwParser) str() string {
	p.expect('"')
	var out []byte
	for {
		if p.i >= len(p.s) {
			prunekitwFail("unterminated string")
		}
		c := p.s[p.i]
		p.i++
		if c == '"' {
			return string(out)
		}
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if p.i >= len(p.s) {
			prunekitwFail("unterminated string")
		}
		e := p.s[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if p.i+4 > len(p.s) {
				prunekitwFail("bad \\u escape")
			}
			cp, err := prunekitwstrconv.ParseUint(p.s[p.i:p.i+4], 16, 32)
			if err != nil {
				prunekitwFail("bad \\u escape")
			}
			if cp > 0xff {
				prunekitwFail("a character that is not one byte")
			}
			p.i += 4
			out = append(out, byte(cp))
		default:
			prunekitwFail("bad escape")
		}
	}
}

func (p *prunekitwParser) value(depth int) prunekitwNode {
	if depth > 2000 {
		prunekitwFail("nested too deeply")
	}
	p.ws()
	if p.i >= len(p.s) {
		prunekitwFail("unexpected end")
	}
	c := p.s[p.i]
	if c == '[' || c == '{' {
		n := prunekitwNode{kind: 'a'}
		end := byte(']')
		if c == '{' {
			n.kind, end = 'o', '}'
		}
		p.i++
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == end {
			p.i++
			return n
		}
		for {
			if n.kind == 'o' {
				p.ws()
				n.items = append(n.items, prunekitwNode{kind: 's', text: p.str()})
				p.expect(':')
			}
			n.items = append(n.items, p.value(depth+1))
			p.ws()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			p.expect(end)
			return n
		}
	}
	if c == '"' {
		return prunekitwNode{kind: 's', text: p.str()}
	}
	switch {
	case p.lit("true"):
		return prunekitwNode{kind: 'b', b: true}
	case p.lit("false"):
		return prunekitwNode{kind: 'b'}
	case p.lit("null"):
		return prunekitwNode{kind: 'n'}
	case p.lit("NaN"):
		return prunekitwNode{kind: 'd', text: "NaN"}
	case p.lit("Infinity"):
		return prunekitwNode{kind: 'd', text: "Infinity"}
	case p.lit("-Infinity"):
		return prunekitwNode{kind: 'd', text: "-Infinity"}
	}
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] >= '0' && p.s[p.i] <= '9' || p.s[p.i] == '-' || p.s[p.i] == '+' || p.s[p.i] == '.' || p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
	}
	if p.i == start {
		prunekitwFail("not a JSON value")
	}
	return prunekitwNode{kind: 'd', text: p.s[start:p.i]}
}

func prunekitwParse(s string) prunekitwNode {
	p := &prunekitwParser{s: s}
	v := p.value(0)
	p.ws()
	if p.i != len(p.s) {
		prunekitwFail("text after the value")
	}
	return v
}

var prunekitwAny = prunekitwreflect.TypeOf((*interface{})(nil)).Elem()
var prunekitwBasic = map[string]prunekitwreflect.Type{
	"bool": prunekitwreflect.TypeOf(false), "string": prunekitwreflect.TypeOf(""),
	"int": prunekitwreflect.TypeOf(int(0)), "int8": prunekitwreflect.TypeOf(int8(0)),
	"int16": prunekitwreflect.TypeOf(int16(0)), "int32": prunekitwreflect.TypeOf(int32(0)),
	"int64": prunekitwreflect.TypeOf(int64(0)), "uint": prunekitwreflect.TypeOf(uint(0)),
	"uint8": prunekitwreflect.TypeOf(uint8(0)), "uint16": prunekitwreflect.TypeOf(uint16(0)),
	"uint32": prunekitwreflect.TypeOf(uint32(0)), "uint64": prunekitwreflect.TypeOf(uint64(0)),
	"float32": prunekitwreflect.TypeOf(float32(0)), "float64": prunekitwreflect.TypeOf(float64(0)),
}

func prunekitwDesc(b []byte, t prunekitwreflect.Type, depth int) []byte {
	if depth > 100 {
		prunekitwFail("a type nested too deeply")
	}
	switch t.Kind() {
	case prunekitwreflect.Slice:
		b = prunekitwDesc(append(b, `["slice",`...), t.Elem(), depth+1)
		return append(b, ']')
	case prunekitwreflect.Array:
		b = append(append(b, `["array",`...), prunekitwstrconv.Itoa(t.Len())+","...)
		return append(prunekitwDesc(b, t.Elem(), depth+1), ']')
	case prunekitwreflect.Map:
		b = prunekitwDesc(append(b, `["map",`...), t.Key(), depth+1)
		return append(prunekitwDesc(append(b, ','), t.Elem(), depth+1), ']')
	case prunekitwreflect.Interface:
		if t == prunekitwAny {
			return append(b, `"any"`...)
		}
	default:
		if bt, ok := prunekitwBasic[t.String()]; ok && bt == t {
			return append(b, `"`+t.String()+`"`...)
		}
	}
	prunekitwFail("cannot send a value of type " + t.String())
	return b
}

func prunekitwType(n *prunekitwNode, depth int) prunekitwreflect.Type {
	if depth > 100 {
		prunekitwFail("a type nested too deeply")
	}
	if n.kind == 's' {
		if n.text == "any" {
			return prunekitwAny
		}
		if t, ok := prunekitwBasic[n.text]; ok {
			return t
		}
	}
	if n.kind == 'a' && len(n.items) >= 2 && n.items[0].kind == 's' {
		switch n.items[0].text {
		case "slice":
			if len(n.items) == 2 {
				return prunekitwreflect.SliceOf(prunekitwType(&n.items[1], depth+1))
			}
		case "array":
			if len(n.items) == 3 {
				size, err := prunekitwstrconv.Atoi(n.items[1].text)
				if err == nil && size >= 0 && size <= 1<<16 {
					return prunekitwreflect.ArrayOf(size, prunekitwType(&n.items[2], depth+1))
				}
			}
		case "map":
			if len(n.items) == 3 {
				k := prunekitwType(&n.items[1], depth+1)
				if !k.Comparable() {
					prunekitwFail("a map key type that is not comparable")
				}
				return prunekitwreflect.MapOf(k, prunekitwType(&n.items[2], depth+1))
			}
		}
	}
	prunekitwFail("an unknown type")
	return nil
}

func prunekitwStr(b []byte, s string) []byte {
	const digits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b = append(b, '\\', '"')
		case c == '\\':
			b = append(b, '\\', '\\')
		case c < 0x20 || c >= 0x7f:
			b = append(b, '\\', 'u', '0', '0', digits[c>>4], digits[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func prunekitwEnc(b []byte, v prunekitwreflect.Value, depth int) []byte {
	if depth > 1000 {
		prunekitwFail("a value nested too deeply")
	}
	switch v.Kind() {
	case prunekitwreflect.Bool:
		return prunekitwstrconv.AppendBool(b, v.Bool())
	case prunekitwreflect.Int, prunekitwreflect.Int8, prunekitwreflect.Int16, prunekitwreflect.Int32, prunekitwreflect.Int64:
		return prunekitwstrconv.AppendInt(b, v.Int(), 10)
	case prunekitwreflect.Uint, prunekitwreflect.Uint8, prunekitwreflect.Uint16, prunekitwreflect.Uint32, prunekitwreflect.Uint64:
		return prunekitwstrconv.AppendUint(b, v.Uint(), 10)
	case prunekitwreflect.Float32, prunekitwreflect.Float64:
		f := v.Float()
		switch {
		case prunekitwmath.IsNaN(f):
			return append(b, "NaN"...)
		case prunekitwmath.IsInf(f, 1):
			return append(b, "Infinity"...)
		case prunekitwmath.IsInf(f, -1):
			return append(b, "-Infinity"...)
		}
		s := prunekitwstrconv.FormatFloat(f, 'g', -1, 64)
		for i := 0; i < len(s); i++ {
			if s[i] == '.' || s[i] == 'e' {
				return append(b, s...)
			}
		}
		return append(b, s+".0"...)
	case prunekitwreflect.String:
		return prunekitwStr(b, v.String())
	case prunekitwreflect.Slice, prunekitwreflect.Map:
		if v.IsNil() {
			return append(b, "null"...)
		}
	case prunekitwreflect.Interface:
		if v.IsNil() {
			return append(b, "null"...)
		}
		e := v.Elem()
		b = prunekitwDesc(append(b, `{"t":`...), e.Type(), 0)
		return append(prunekitwEnc(append(b, `,"v":`...), e, depth+1), '}')
	}
	switch v.Kind() {
	case prunekitwreflect.Slice, prunekitwreflect.Array:
		b = append(b, '[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = prunekitwEnc(b, v.Index(i), depth+1)
		}
		return append(b, ']')
	case prunekitwreflect.Map:
		b = append(b, '[')
		it := v.MapRange()
		for i := 0; it.Next(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = prunekitwEnc(append(b, '['), it.Key(), depth+1)
			b = append(prunekitwEnc(append(b, ','), it.Value(), depth+1), ']')
		}
		return append(b, ']')
	}
	prunekitwFail("cannot send a value of type " + v.Type().String())
	return b
}

func prunekitwInt(n *prunekitwNode) string {
	if n.kind != 'd' {
		prunekitwFail("expected an integer")
	}
	for i := 0; i < len(n.text); i++ {
		if c := n.text[i]; c == '.' || c == 'e' || c == 'E' || c == 'N' || c == 'I' {
			prunekitwFail("expected an integer")
		}
	}
	return n.text
}

func prunekitwDec(n *prunekitwNode, t prunekitwreflect.Type, depth int) prunekitwreflect.Value {
	if depth > 1000 {
		prunekitwFail("a value nested too deeply")
	}
	v := prunekitwreflect.New(t).Elem()
	switch t.Kind() {
	case prunekitwreflect.Bool:
		if n.kind != 'b' {
			prunekitwFail("expected a bool")
		}
		v.SetBool(n.b)
	case prunekitwreflect.Int, prunekitwreflect.Int8, prunekitwreflect.Int16, prunekitwreflect.Int32, prunekitwreflect.Int64:
		x, err := prunekitwstrconv.ParseInt(prunekitwInt(n), 10, t.Bits())
		if err != nil {
			prunekitwFail("an integer out of range for " + t.String())
		}
		v.SetInt(x)
	case prunekitwreflect.Uint, prunekitwreflect.Uint8, prunekitwreflect.Uint16, prunekitwreflect.Uint32, prunekitwreflect.Uint64:
		x, err := prunekitwstrconv.ParseUint(prunekitwInt(n), 10, t.Bits())
		if err != nil {
			prunekitwFail("an integer out of range for " + t.String())
		}
		v.SetUint(x)
	case prunekitwreflect.Float32, prunekitwreflect.Float64:
		if n.kind != 'd' {
			prunekitwFail("expected a number")
		}
		var x float64
		switch n.text {
		case "NaN":
			x = prunekitwmath.NaN()
		case "Infinity":
			x = prunekitwmath.Inf(1)
		case "-Infinity":
			x = prunekitwmath.Inf(-1)
		default:
			var err error
			x, err = prunekitwstrconv.ParseFloat(n.text, 64)
			if err != nil {
				prunekitwFail("a bad number")
			}
		}
		v.SetFloat(x)
	case prunekitwreflect.String:
		if n.kind != 's' {
			prunekitwFail("expected a string")
		}
		v.SetString(n.text)
	case prunekitwreflect.Slice:
		if n.kind == 'n' {
			break
		}
		if n.kind != 'a' {
			prunekitwFail("expected a list")
		}
		v.Set(prunekitwreflect.MakeSlice(t, len(n.items), len(n.items)))
		for i := range n.items {
			v.Index(i).Set(prunekitwDec(&n.items[i], t.Elem(), depth+1))
		}
	case prunekitwreflect.Array:
		if n.kind != 'a' || len(n.items) != t.Len() {
			prunekitwFail("expected an array of " + prunekitwstrconv.Itoa(t.Len()))
		}
		for i := range n.items {
			v.Index(i).Set(prunekitwDec(&n.items[i], t.Elem(), depth+1))
		}
	case prunekitwreflect.Map:
		if n.kind == 'n' {
			break
		}
		if n.kind != 'a' {
			prunekitwFail("expected a map")
		}
		v.Set(prunekitwreflect.MakeMapWithSize(t, len(n.items)))
		for i := range n.items {
			kv := &n.items[i]
			if kv.kind != 'a' || len(kv.items) != 2 {
				prunekitwFail("expected a [key, value] pair")
			}
			k := prunekitwDec(&kv.items[0], t.Key(), depth+1)
			if k.Kind() == prunekitwreflect.Interface && !k.IsNil() && !k.Elem().Type().Comparable() {
				prunekitwFail("a map key that is not comparable")
			}
			v.SetMapIndex(k, prunekitwDec(&kv.items[1], t.Elem(), depth+1))
		}
	case prunekitwreflect.Interface:
		if t != prunekitwAny {
			prunekitwFail("cannot receive a value of type " + t.String())
		}
		if n.kind == 'n' {
			break
		}
		if n.kind != 'o' || len(n.items) != 4 || n.items[0].text != "t" || n.items[2].text != "v" {
			prunekitwFail("expected a tagged value")
		}
		v.Set(prunekitwDec(&n.items[3], prunekitwType(&n.items[1], 0), depth+1))
	default:
		prunekitwFail("cannot receive a value of type " + t.String())
	}
	return v
}

// run f; a prunekitwBad or any other panic comes back as its message
func prunekitwGuard(f func()) (why string) {
	done := false
	defer func() {
		if done {
			return
		}
		r := recover()
		if bad, ok := r.(prunekitwBad); ok {
			why = bad.why
		} else {
			why = prunekitwfmt.Sprint(r)
		}
		if why == "" {
			why = "a panic"
		}
		if len(why) > 300 {
			why = why[:300]
		}
	}()
	f()
	done = true
	return ""
}

type prunekitwChannel struct {
	in, out *prunekitwos.File
	buf     []byte
	seen    int
}

var prunekitwC *prunekitwChannel

func prunekitwDie(code int, why string) {
	prunekitwos.Stderr.WriteString("prunekit: " + why + "\n")
	prunekitwos.Exit(code)
}

func prunekitwOpen() *prunekitwChannel {
	if prunekitwC == nil {
		fd := func(name string) uintptr {
			x, err := prunekitwstrconv.Atoi(prunekitwos.Getenv(name))
			if err != nil {
				prunekitwDie(@HARNESS@, name+" is not set")
			}
			return uintptr(x)
		}
		prunekitwC = &prunekitwChannel{
			in:  prunekitwos.NewFile(fd("PRUNEKIT_IN_FD"), "prunekit-in"),
			out: prunekitwos.NewFile(fd("PRUNEKIT_OUT_FD"), "prunekit-out"),
		}
	}
	return prunekitwC
}

func (c *prunekitwChannel) recv() (string, bool) {
	chunk := make([]byte, 65536)
	for {
		for ; c.seen < len(c.buf); c.seen++ {
			if c.buf[c.seen] == '\n' {
				line := string(c.buf[:c.seen])
				c.buf = c.buf[c.seen+1:]
				c.seen = 0
				return line, true
			}
		}
		n, err := c.in.Read(chunk)
		c.buf = append(c.buf, chunk[:n]...)
		if n == 0 && err != nil {
			return "", false
		}
	}
}

func (c *prunekitwChannel) send(b []byte) {
	if _, err := c.out.Write(append(b, '\n')); err != nil {
		prunekitwos.Exit(@GONE@)
	}
}

func prunekitwFrame(key, text string) []byte {
	return append(prunekitwStr([]byte(`{"`+key+`":`), text), '}')
}

// the candidate's side: answer calls of fn until the relay closes the pipe
func prunekitwServe(fn interface{}) {
	c := prunekitwOpen()
	fv := prunekitwreflect.ValueOf(fn)
	ft := fv.Type()
	c.send([]byte(`{"ready":true}`))
	for {
		line, ok := c.recv()
		if !ok {
			prunekitwos.Exit(0)
		}
		c.send(prunekitwAnswer(fv, ft, line))
	}
}

func prunekitwAnswer(fv prunekitwreflect.Value, ft prunekitwreflect.Type, line string) []byte {
	var args, out []prunekitwreflect.Value
	if why := prunekitwGuard(func() {
		req := prunekitwParse(line)
		if req.kind != 'a' || len(req.items) != ft.NumIn() {
			prunekitwFail("a call with the wrong number of arguments")
		}
		for i := range req.items {
			args = append(args, prunekitwDec(&req.items[i], ft.In(i), 0))
		}
	}); why != "" {
		return prunekitwFrame("bad", why)
	}
	if why := prunekitwGuard(func() {
		if ft.IsVariadic() {
			out = fv.CallSlice(args)
		} else {
			out = fv.Call(args)
		}
	}); why != "" {
		return prunekitwFrame("raise", why)
	}
	var b []byte
	if why := prunekitwGuard(func() {
		b = []byte(`{"value":`)
		switch len(out) {
		case 0:
			b = append(b, "null"...)
		case 1:
			b = prunekitwEnc(b, out[0], 0)
		default:
			b = append(b, '[')
			for i, o := range out {
				if i > 0 {
					b = append(b, ',')
				}
				b = prunekitwEnc(b, o, 0)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}); why != "" {
		return prunekitwFrame("bad", why)
	}
	return b
}

// the tests' side: *fp becomes a function of its type that forwards each call over the wire
func prunekitwClient(fp interface{}) {
	pv := prunekitwreflect.ValueOf(fp).Elem()
	ft := pv.Type()
	pv.Set(prunekitwreflect.MakeFunc(ft, func(args []prunekitwreflect.Value) []prunekitwreflect.Value {
		c := prunekitwOpen()
		b := []byte{'['}
		if why := prunekitwGuard(func() {
			for i, a := range args {
				if i > 0 {
					b = append(b, ',')
				}
				b = prunekitwEnc(b, a, 0)
			}
		}); why != "" {
			prunekitwDie(@HARNESS@, "cannot send a call: "+why)
		}
		c.send(append(b, ']'))
		line, ok := c.recv()
		if !ok {
			prunekitwDie(@GONE@, "the candidate stopped answering")
		}
		var a prunekitwNode
		if why := prunekitwGuard(func() { a = prunekitwParse(line) }); why != "" {
			prunekitwDie(@HARNESS@, "an unreadable frame from the relay: "+why)
		}
		if a.kind != 'o' || len(a.items) != 2 {
			prunekitwDie(@HARNESS@, "an unexpected frame")
		}
		val := &a.items[1]
		switch a.items[0].text {
		case "value":
		case "raise":
			panic("the candidate raised: " + val.text)
		case "bad":
			prunekitwDie(@BAD@, "the candidate returned a value that cannot be sent: "+val.text)
		default:
			prunekitwDie(@GONE@, "the candidate stopped answering: "+val.text)
		}
		out := make([]prunekitwreflect.Value, ft.NumOut())
		if why := prunekitwGuard(func() {
			switch ft.NumOut() {
			case 0:
				if val.kind != 'n' {
					prunekitwFail("expected no value")
				}
			case 1:
				out[0] = prunekitwDec(val, ft.Out(0), 0)
			default:
				if val.kind != 'a' || len(val.items) != ft.NumOut() {
					prunekitwFail("expected " + prunekitwstrconv.Itoa(ft.NumOut()) + " results")
				}
				for i := range out {
					out[i] = prunekitwDec(&val.items[i], ft.Out(i), 0)
				}
			}
		}); why != "" {
			prunekitwDie(@BAD@, "the candidate's answer does not fit the declared type: "+why)
		}
		return out
	}))
}
"""


def codec() -> str:
    return (
        CODEC.replace("@GONE@", str(GONE_EXIT))
        .replace("@BAD@", str(BAD_EXIT))
        .replace("@HARNESS@", str(HARNESS_EXIT))
    )


def server_main(sig: Signature) -> str:
    """A TestMain that serves calls of the function under test (the candidate's test binary
    runs no tests)."""
    return (
        codec() + f"\nfunc TestMain(m *prunekitwtesting.M) {{\n    prunekitwServe({sig.name})\n}}\n"
    )


def client(sig: Signature) -> str:
    """The codec and a function with the prompt's header whose body forwards each call."""
    args = ", ".join(sig.names)
    if sig.variadic:
        args += "..."
    call = f"prunekitwF({args})"
    return (
        codec()
        + f"\nfunc {sig.name}({sig.params}) {sig.results} {{\n"
        + f"    var prunekitwF func({sig.params}) {sig.results}\n"
        + "    prunekitwClient(&prunekitwF)\n"
        + f"    {'return ' if sig.results else ''}{call}\n"
        + "}\n"
    )
