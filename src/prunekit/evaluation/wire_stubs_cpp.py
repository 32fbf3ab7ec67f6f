"""C++ stubs for a split run (`sandbox_split`): the candidate's server, the tests' client.

The function under test is the prompt's last function header; its parameter and return types
must be built from the types HumanEval-X's C++ signatures use: int, long, long long, unsigned,
float, double, bool, char, string, vector<T>, list<T>, map<K,V>, pair<A,B>, boost::any and
list_any (any of them const or by reference). Anything else raises StubError, and the caller
falls back visibly. Values as JSON: integers and reals as numbers (reals always with a point or
exponent, NaN/Infinity as Python's json writes them; a float travels as its exact double, so
it comes back bit for bit), bool, a string as its bytes (each byte over 0x7f as \\u00XX), a
char as a one-byte string, vector/list/pair as arrays, a map as an array of [key, value]
pairs, a boost::any as {"t": type, "v": value}. A value that does not fit the declared type
fails the decode: in the test program that is a failure of the candidate (BAD_EXIT).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prunekit.evaluation.sandbox_split import BAD_EXIT, GONE_EXIT
from prunekit.evaluation.wire_stubs_js import StubError

HARNESS_EXIT = 72  # the test program could not send a call (a stub bug, never a verdict)
HEADER = re.compile(
    r"^([A-Za-z_][\w:<>,\s\*&]*?)\b([A-Za-z_]\w*)\s*\(([^(){};]*)\)\s*\{", re.MULTILINE
)
KEYWORDS = {"if", "for", "while", "switch", "return", "else", "do", "catch"}
SCALARS = {
    "int",
    "long",
    "long long",
    "long int",
    "long long int",
    "unsigned",
    "unsigned int",
    "unsigned long",
    "unsigned long long",
    "float",
    "double",
    "bool",
    "char",
    "string",
    "std::string",
    "boost::any",
    "list_any",
}
TEMPLATES = {"vector": 1, "list": 1, "map": 2, "pair": 2}


@dataclass(frozen=True)
class Signature:
    """The function under test: return type, name, parameter types, where its header starts."""

    returns: str
    name: str
    params: tuple[str, ...]
    start: int


def _split_top(text: str, sep: str = ",") -> list[str]:
    """`text` split at `sep` outside angle brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "<") - (ch == ">")
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def value_type(spelled: str) -> str:
    """The type of a variable holding `spelled` (no const, no reference); StubError if the
    wire cannot carry it."""
    text = " ".join(spelled.replace("&", " ").split())
    text = re.sub(r"^const\s+|\s+const$", "", text).strip()
    _check_type(text)
    return text


def _check_type(text: str) -> None:
    text = " ".join(text.split())
    if text in SCALARS:
        return
    m = re.fullmatch(r"(?:std::)?(\w+)\s*<(.*)>", text)
    if m is None or m.group(1) not in TEMPLATES:
        raise StubError(f"no wire format for the C++ type '{text}'")
    args = _split_top(m.group(2))
    if len(args) != TEMPLATES[m.group(1)]:
        raise StubError(f"no wire format for the C++ type '{text}'")
    for arg in args:
        _check_type(arg.strip())


def _param_type(param: str) -> str:
    """A parameter's type: the declaration without its trailing name."""
    m = re.fullmatch(r"\s*(.*?[\s>&*])\s*([A-Za-z_]\w*)\s*", param)
    if m is None:
        raise StubError(f"cannot read the parameter '{param.strip()}'")
    return m.group(1).strip()


def signature(prompt: str) -> Signature:
    """The prompt's last function header (the one the completion finishes)."""
    found = [m for m in HEADER.finditer(prompt) if m.group(2) not in KEYWORDS]
    if not found:
        raise StubError("no function header in the prompt")
    m = found[-1]
    returns = " ".join(m.group(1).split())
    value_type(returns)
    raw = m.group(3).strip()
    params = () if raw in ("", "void") else tuple(_param_type(p) for p in _split_top(raw))
    for p in params:
        value_type(p)
    return Signature(returns, m.group(2), params, m.start())


CODEC = r"""
#include <string>
#include <vector>
#include <map>
#include <list>
#include <utility>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cerrno>
#include <climits>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <typeinfo>
#include <unistd.h>
namespace prunekit_wire {
struct Bad {
  std::string why;
  explicit Bad(const std::string& w) : why(w) {}
};
struct Value {
  enum Kind { NUL, BOOL, NUM, STR, ARR, OBJ };
  Kind kind;
  bool b;
  std::string text;
  std::vector<Value> items;  // ARR: elements; OBJ: key, value, key, value...
  Value() : kind(NUL), b(false) {}
};
class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s), i_(0) {}
  Value all() {
    Value v = value(0);
    ws();
    if (i_ != s_.size()) throw Bad("text after the value");
    return v;
  }

 private:
  const std::string& s_;
  size_t i_;
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n')) ++i_;
  }
  bool lit(const char* w) {
    size_t n = std::strlen(w);
    if (s_.compare(i_, n, w) == 0) { i_ += n; return true; }
    return false;
  }
  void expect(char c) {
    ws();
    if (i_ >= s_.size() || s_[i_] != c) throw Bad(std::string("expected ") + c);
    ++i_;
  }
  bool at(char c) { ws(); return i_ < s_.size() && s_[i_] == c; }
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw Bad("bad \\u escape");
  }
  std::string str() {
    expect('"');
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) throw Bad("unterminated string");
      char c = s_[i_++];
      if (c == '"') return out;
      if (c != '\\') { out += c; continue; }
      if (i_ >= s_.size()) throw Bad("unterminated string");
      char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) throw Bad("bad \\u escape");
          int cp = 0;
          for (int k = 0; k < 4; ++k) cp = cp * 16 + hex(s_[i_++]);
          if (cp > 0xff) throw Bad("a character that is not one byte");
          out += static_cast<char>(cp);
          break;
        }
        default: throw Bad("bad escape");
      }
    }
  }
  Value value(int depth) {
    if (depth > 2000) throw Bad("nested too deeply");
    ws();
    if (i_ >= s_.size()) throw Bad("unexpected end");
    Value v;
    char c = s_[i_];
    if (c == '[' || c == '{') {
      bool obj = c == '{';
      char close = obj ? '}' : ']';
      ++i_;
      v.kind = obj ? Value::OBJ : Value::ARR;
      if (at(close)) { ++i_; return v; }
      for (;;) {
        if (obj) {
          Value k;
          k.kind = Value::STR;
          ws();
          k.text = str();
          expect(':');
          v.items.push_back(k);
        }
        v.items.push_back(value(depth + 1));
        if (at(',')) { ++i_; continue; }
        expect(close);
        return v;
      }
    }
    if (c == '"') { v.kind = Value::STR; v.text = str(); return v; }
    if (lit("true")) { v.kind = Value::BOOL; v.b = true; return v; }
    if (lit("false")) { v.kind = Value::BOOL; return v; }
    if (lit("null")) return v;
    v.kind = Value::NUM;
    if (lit("NaN")) { v.text = "NaN"; return v; }
    if (lit("Infinity")) { v.text = "Infinity"; return v; }
    if (lit("-Infinity")) { v.text = "-Infinity"; return v; }
    size_t start = i_;
    while (i_ < s_.size() && std::strchr("0123456789+-.eE", s_[i_]) && s_[i_] != '\0') ++i_;
    if (i_ == start) throw Bad("not a JSON value");
    v.text = s_.substr(start, i_ - start);
    return v;
  }
};

struct Out {
  std::string s;
};
inline void dump_int(Out& o, long long v) {
  char b[32];
  std::snprintf(b, sizeof b, "%lld", v);
  o.s += b;
}
inline void dump_real(Out& o, double v) {
  if (std::isnan(v)) { o.s += "NaN"; return; }
  if (std::isinf(v)) { o.s += v > 0 ? "Infinity" : "-Infinity"; return; }
  char b[48];
  std::snprintf(b, sizeof b, "%.17g", v);
  o.s += b;
  if (!std::strpbrk(b, ".eE")) o.s += ".0";
}
inline void dump_str(Out& o, const char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  o.s += '"';
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(p[i]);
    if (c == '"') o.s += "\\\"";
    else if (c == '\\') o.s += "\\\\";
    else if (c < 0x20 || c >= 0x7f) {
      o.s += "\\u00";
      o.s += digits[c >> 4];
      o.s += digits[c & 15];
    } else o.s += static_cast<char>(c);
  }
  o.s += '"';
}
inline void dump(Out& o, bool v) { o.s += v ? "true" : "false"; }
inline void dump(Out& o, int v) { dump_int(o, v); }
inline void dump(Out& o, long v) { dump_int(o, v); }
inline void dump(Out& o, long long v) { dump_int(o, v); }
inline void dump(Out& o, unsigned v) { dump_int(o, static_cast<long long>(v)); }
inline void dump(Out& o, unsigned long v) {
  char b[32];
  std::snprintf(b, sizeof b, "%lu", v);
  o.s += b;
}
inline void dump(Out& o, unsigned long long v) {
  char b[32];
  std::snprintf(b, sizeof b, "%llu", v);
  o.s += b;
}
inline void dump(Out& o, double v) { dump_real(o, v); }
inline void dump(Out& o, float v) { dump_real(o, static_cast<double>(v)); }
inline void dump(Out& o, char v) { dump_str(o, &v, 1); }
inline void dump(Out& o, const std::string& v) { dump_str(o, v.data(), v.size()); }
inline void dump(Out& o, const char* v) { dump_str(o, v, std::strlen(v)); }
template <class T> void dump(Out& o, const std::vector<T>& v) {
  o.s += '[';
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) o.s += ',';
    const T& x = v[i];
    dump(o, x);
  }
  o.s += ']';
}
template <class T> void dump(Out& o, const std::list<T>& v) {
  o.s += '[';
  for (typename std::list<T>::const_iterator it = v.begin(); it != v.end(); ++it) {
    if (it != v.begin()) o.s += ',';
    dump(o, *it);
  }
  o.s += ']';
}
template <class A, class B> void dump(Out& o, const std::pair<A, B>& v) {
  o.s += '[';
  dump(o, v.first);
  o.s += ',';
  dump(o, v.second);
  o.s += ']';
}
template <class K, class V> void dump(Out& o, const std::map<K, V>& m) {
  o.s += '[';
  for (typename std::map<K, V>::const_iterator it = m.begin(); it != m.end(); ++it) {
    if (it != m.begin()) o.s += ',';
    dump(o, *it);
  }
  o.s += ']';
}

inline long long load_ll(const Value& v) {
  if (v.kind != Value::NUM || std::strpbrk(v.text.c_str(), ".eENI"))
    throw Bad("expected an integer");
  errno = 0;
  char* end = 0;
  long long x = std::strtoll(v.text.c_str(), &end, 10);
  if (errno || *end) throw Bad("an integer out of range");
  return x;
}
inline double load_real(const Value& v) {
  if (v.kind != Value::NUM) throw Bad("expected a number");
  char* end = 0;
  double x = std::strtod(v.text.c_str(), &end);
  if (*end) throw Bad("a bad number");
  return x;
}
inline void load(const Value& v, bool& out) {
  if (v.kind != Value::BOOL) throw Bad("expected a bool");
  out = v.b;
}
inline void load(const Value& v, int& out) {
  long long x = load_ll(v);
  if (x < INT_MIN || x > INT_MAX) throw Bad("out of range for int");
  out = static_cast<int>(x);
}
inline void load(const Value& v, long& out) {
  long long x = load_ll(v);
  if (x < LONG_MIN || x > LONG_MAX) throw Bad("out of range for long");
  out = static_cast<long>(x);
}
inline void load(const Value& v, long long& out) { out = load_ll(v); }
inline void load(const Value& v, unsigned& out) {
  long long x = load_ll(v);
  if (x < 0 || x > static_cast<long long>(UINT_MAX)) throw Bad("out of range for unsigned");
  out = static_cast<unsigned>(x);
}
inline void load(const Value& v, unsigned long long& out) {
  if (v.kind != Value::NUM || std::strpbrk(v.text.c_str(), "-.eENI"))
    throw Bad("expected an unsigned integer");
  errno = 0;
  char* end = 0;
  out = std::strtoull(v.text.c_str(), &end, 10);
  if (errno || *end) throw Bad("an integer out of range");
}
inline void load(const Value& v, unsigned long& out) {
  unsigned long long x;
  load(v, x);
  if (x > ULONG_MAX) throw Bad("out of range for unsigned long");
  out = static_cast<unsigned long>(x);
}
inline void load(const Value& v, double& out) { out = load_real(v); }
inline void load(const Value& v, float& out) { out = static_cast<float>(load_real(v)); }
inline void load(const Value& v, std::string& out) {
  if (v.kind != Value::STR) throw Bad("expected a string");
  out = v.text;
}
inline void load(const Value& v, char& out) {
  if (v.kind != Value::STR || v.text.size() != 1) throw Bad("expected one char");
  out = v.text[0];
}
template <class T> void load(const Value& v, std::vector<T>& out) {
  if (v.kind != Value::ARR) throw Bad("expected a list");
  out.clear();
  for (size_t i = 0; i < v.items.size(); ++i) {
    T x = T();
    load(v.items[i], x);
    out.push_back(x);
  }
}
template <class T> void load(const Value& v, std::list<T>& out) {
  if (v.kind != Value::ARR) throw Bad("expected a list");
  out.clear();
  for (size_t i = 0; i < v.items.size(); ++i) {
    T x = T();
    load(v.items[i], x);
    out.push_back(x);
  }
}
template <class A, class B> void load(const Value& v, std::pair<A, B>& out) {
  if (v.kind != Value::ARR || v.items.size() != 2) throw Bad("expected a pair");
  load(v.items[0], out.first);
  load(v.items[1], out.second);
}
template <class K, class V> void load(const Value& v, std::map<K, V>& out) {
  if (v.kind != Value::ARR) throw Bad("expected a map");
  out.clear();
  for (size_t i = 0; i < v.items.size(); ++i) {
    std::pair<K, V> kv;
    load(v.items[i], kv);
    out[kv.first] = kv.second;
  }
}

class Channel {
 public:
  Channel() : in_(fd("PRUNEKIT_IN_FD")), out_(fd("PRUNEKIT_OUT_FD")) {}
  bool recv(std::string& line) {
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      char b[65536];
      ssize_t n = ::read(in_, b, sizeof b);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(b, static_cast<size_t>(n));
    }
  }
  void send(const std::string& text) {
    std::string t = text + "\n";
    size_t off = 0;
    while (off < t.size()) {
      ssize_t n = ::write(out_, t.data() + off, t.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) std::_Exit(@GONE@);
      off += static_cast<size_t>(n);
    }
  }

 private:
  static int fd(const char* name) {
    const char* v = std::getenv(name);
    if (!v) {
      std::fprintf(stderr, "prunekit: %s is not set\n", name);
      std::_Exit(@HARNESS@);
    }
    return std::atoi(v);
  }
  int in_, out_;
  std::string buf_;
};
inline Channel& channel() {
  static Channel c;
  return c;
}
inline void die(int code, const std::string& why) {
  std::fprintf(stderr, "prunekit: %s\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(code);
}
inline std::string frame(const char* key, const std::string& text) {
  Out o;
  o.s = std::string("{\"") + key + "\":";
  dump_str(o, text.data(), text.size() > 300 ? 300 : text.size());
  o.s += "}";
  return o.s;
}
template <class T> std::string value_frame(const T& value) {
  Out o;
  o.s = "{\"value\":";
  dump(o, value);
  o.s += "}";
  return o.s;
}
inline Value call(const std::string& args) {
  Channel& c = channel();
  c.send(args);
  std::string line;
  if (!c.recv(line)) die(@GONE@, "the candidate stopped answering");
  Value a;
  try {
    a = Parser(line).all();
  } catch (const Bad& b) {
    die(@HARNESS@, "an unreadable frame from the relay: " + b.why);
  }
  if (a.kind != Value::OBJ || a.items.size() != 2) die(@HARNESS@, "an unexpected frame");
  const std::string& key = a.items[0].text;
  if (key == "value") return a.items[1];
  if (key == "raise") throw std::runtime_error("the candidate raised: " + a.items[1].text);
  if (key == "bad") die(@BAD@, "the candidate returned a value that cannot be sent: " + a.items[1].text);
  die(@GONE@, "the candidate stopped answering: " + a.items[1].text);
  return a;
}
template <class T> T answer(const Value& v) {
  T out = T();
  try {
    load(v, out);
  } catch (const Bad& b) {
    die(@BAD@, "the candidate's answer does not fit the declared type: " + b.why);
  }
  return out;
}
template <class T> T arg(const Value& req, size_t i) {
  if (req.kind != Value::ARR || i >= req.items.size()) throw Bad("missing argument");
  T out = T();
  load(req.items[i], out);
  return out;
}
}  // namespace prunekit_wire
"""

CODEC_ANY = r"""
namespace prunekit_wire {
inline void dump(Out& o, const boost::any& a) {
  if (a.empty()) { o.s += "{\"t\":\"empty\"}"; return; }
  const std::type_info& t = a.type();
#define PRUNEKIT_ANY(TYPE, TAG) \
  if (t == typeid(TYPE)) { o.s += "{\"t\":\"" TAG "\",\"v\":"; dump(o, boost::any_cast<TYPE>(a)); o.s += "}"; return; }
  PRUNEKIT_ANY(int, "int") PRUNEKIT_ANY(long, "long") PRUNEKIT_ANY(long long, "long long")
  PRUNEKIT_ANY(unsigned, "unsigned") PRUNEKIT_ANY(double, "double") PRUNEKIT_ANY(float, "float")
  PRUNEKIT_ANY(bool, "bool") PRUNEKIT_ANY(char, "char") PRUNEKIT_ANY(std::string, "string")
  PRUNEKIT_ANY(const char*, "cstr")
#undef PRUNEKIT_ANY
  throw Bad(std::string("cannot send a boost::any holding ") + t.name());
}
inline void load(const Value& v, boost::any& a) {
  if (v.kind != Value::OBJ) throw Bad("expected a tagged any");
  std::string tag;
  const Value* x = 0;
  for (size_t i = 0; i + 1 < v.items.size(); i += 2) {
    if (v.items[i].text == "t") load(v.items[i + 1], tag);
    else if (v.items[i].text == "v") x = &v.items[i + 1];
  }
  if (tag == "empty") { a = boost::any(); return; }
  if (!x) throw Bad("a tagged any without a value");
#define PRUNEKIT_ANY(TYPE, TAG) \
  if (tag == TAG) { TYPE y; load(*x, y); a = y; return; }
  PRUNEKIT_ANY(int, "int") PRUNEKIT_ANY(long, "long") PRUNEKIT_ANY(long long, "long long")
  PRUNEKIT_ANY(unsigned, "unsigned") PRUNEKIT_ANY(double, "double") PRUNEKIT_ANY(float, "float")
  PRUNEKIT_ANY(bool, "bool") PRUNEKIT_ANY(char, "char") PRUNEKIT_ANY(std::string, "string")
#undef PRUNEKIT_ANY
  if (tag == "cstr") {
    std::string y;
    load(*x, y);
    a = static_cast<const char*>((new std::string(y))->c_str());
    return;
  }
  throw Bad("an unknown any tag: " + tag);
}
}  // namespace prunekit_wire
"""


def _codec(source: str) -> str:
    text = CODEC + (CODEC_ANY if "boost/any.hpp" in source else "")
    return (
        text.replace("@GONE@", str(GONE_EXIT))
        .replace("@BAD@", str(BAD_EXIT))
        .replace("@HARNESS@", str(HARNESS_EXIT))
    )


def server(sig: Signature, source: str) -> str:
    """The codec and a main() that answers calls of `sig` (appended after the candidate)."""
    args = "".join(
        f"      {value_type(t)} pk_a{i} = prunekit_wire::arg< {value_type(t)} >(pk_req, {i});\n"
        for i, t in enumerate(sig.params)
    )
    call = f"{sig.name}({', '.join(f'pk_a{i}' for i in range(len(sig.params)))})"
    return (
        _codec(source)
        + "int main() {\n"
        + "  prunekit_wire::Channel& pk_c = prunekit_wire::channel();\n"
        + '  pk_c.send("{\\"ready\\":true}");\n'
        + "  std::string pk_line;\n"
        + "  while (pk_c.recv(pk_line)) {\n"
        + "    std::string pk_ans;\n"
        + "    try {\n"
        + "      prunekit_wire::Value pk_req = prunekit_wire::Parser(pk_line).all();\n"
        + args
        + f"      pk_ans = prunekit_wire::value_frame({call});\n"
        + "    } catch (const prunekit_wire::Bad& pk_b) {\n"
        + '      pk_ans = prunekit_wire::frame("bad", pk_b.why);\n'
        + "    } catch (const std::exception& pk_e) {\n"
        + '      pk_ans = prunekit_wire::frame("raise", pk_e.what());\n'
        + "    } catch (...) {\n"
        + '      pk_ans = prunekit_wire::frame("raise", "an exception");\n'
        + "    }\n"
        + "    pk_c.send(pk_ans);\n"
        + "  }\n"
        + "  return 0;\n"
        + "}\n"
    )


def client(sig: Signature, source: str) -> str:
    """The codec and a function with `sig` that sends each call and returns the answer."""
    params = ", ".join(f"{t} pk_p{i}" for i, t in enumerate(sig.params))
    dumps = "".join(
        ("    pk_o.s += ',';\n" if i else "") + f"    prunekit_wire::dump(pk_o, pk_p{i});\n"
        for i in range(len(sig.params))
    )
    return (
        _codec(source)
        + f"{sig.returns} {sig.name}({params}) {{\n"
        + "  prunekit_wire::Out pk_o;\n"
        + "  try {\n"
        + '    pk_o.s = "[";\n'
        + dumps
        + "    pk_o.s += ']';\n"
        + "  } catch (const prunekit_wire::Bad& pk_b) {\n"
        + f'    prunekit_wire::die({HARNESS_EXIT}, "cannot send a call: " + pk_b.why);\n'
        + "  }\n"
        + f"  return prunekit_wire::answer< {value_type(sig.returns)} >"
        + "(prunekit_wire::call(pk_o.s));\n"
        + "}\n"
    )
