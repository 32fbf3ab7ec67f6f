"""Java stubs for a split run (`sandbox_split`): the candidate's server, the tests' client.

The function under test is the prompt's last `public T name(...) {` of class Solution; its
parameter and return types must be built from the primitives, their boxes, String, Object,
List/ArrayList, Map/HashMap, Optional and arrays. Anything else raises StubError and the
caller falls back visibly. The codec (`PrunekitWire`, JDK only) reads the method's generic
types by reflection. Candidate side: the real Solution and a `PrunekitRunner` that answers
calls on one `new Solution()`; test side: a Solution whose methods are the prompt's helpers and
a forwarding stub for the function, beside the tests' Main. Values as JSON: integers as
integers, double/float as Java writes them (always with a point or exponent; parsed back bit
for bit; NaN/Infinity), a String as UTF-16 units (each outside printable ASCII as \\uXXXX), a
char as a one-char string, lists and arrays as arrays, a map as [key, value] pairs (decoded in
that order into a LinkedHashMap), an Optional as [] or [value], an Object as {"t": class, "v":
value} (Integer, Long, Short, Byte, Double, Float, Boolean, Character, String, List, Map,
Optional; any other class cannot be sent). A value that does not fit the declared type fails.
Strings the tests receive are interned, as the literals they may be compared to with `==` are
(HumanEval-X Java/137 does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prunekit.evaluation.sandbox_split import BAD_EXIT, GONE_EXIT
from prunekit.evaluation.wire_stubs_cpp import HARNESS_EXIT
from prunekit.evaluation.wire_stubs_js import StubError

HEADER = re.compile(
    r"^[ \t]*public\s+((?:[\w.]+\s*(?:<[\w<>,\s\[\]]*>)?(?:\s*\[\s*\])*))\s+([A-Za-z_]\w*)\s*"
    r"\(([^()]*)\)\s*(?:throws\s+[\w.,\s]+)?\{",
    re.MULTILINE,
)
SCALARS = {
    "int",
    "long",
    "short",
    "byte",
    "double",
    "float",
    "boolean",
    "char",
    "Integer",
    "Long",
    "Short",
    "Byte",
    "Double",
    "Float",
    "Boolean",
    "Character",
    "String",
    "Object",
}
GENERICS = {"List": 1, "ArrayList": 1, "Optional": 1, "Map": 2, "HashMap": 2}


@dataclass(frozen=True)
class Signature:
    """The method under test: return type, name, parameter types and names, header start."""

    returns: str
    name: str
    types: tuple[str, ...]
    names: tuple[str, ...]
    start: int


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "<") - (ch == ">")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def check_type(text: str) -> None:
    """StubError unless the wire carries values of the Java type `text`."""
    t = " ".join(text.split()).replace("java.util.", "").replace("java.lang.", "")
    if t.endswith("[]"):
        return check_type(t[:-2])
    if t in SCALARS:
        return
    m = re.fullmatch(r"(\w+)\s*<(.*)>", t)
    if m and m.group(1) in GENERICS:
        args = _split_top(m.group(2))
        if len(args) == GENERICS[m.group(1)]:
            for a in args:
                if a in ("int", "long", "short", "byte", "double", "float", "boolean", "char"):
                    break
                check_type(a)
            else:
                return
    raise StubError(f"no wire format for the Java type '{text.strip()}'")


def raw_class(text: str) -> str:
    """`text` as a class literal: generics dropped (`List<Integer>` -> `List.class`)."""
    return re.sub(r"<.*>", "", " ".join(text.split())).replace(" ", "") + ".class"


def signature(prompt: str) -> Signature:
    """The prompt's last public method header (the one the completion finishes)."""
    found = list(HEADER.finditer(prompt))
    if not found:
        raise StubError("no public method header in the prompt")
    m = found[-1]
    returns = " ".join(m.group(1).split())
    if returns != "void":
        check_type(returns)
    types, names = [], []
    raw = m.group(3).strip()
    for param in _split_top(raw) if raw else []:
        pm = re.fullmatch(r"(?:final\s+)?(.+?)\s*\b([A-Za-z_]\w*)", param)
        if pm is None or "..." in param:
            raise StubError(f"cannot read the parameter '{param}'")
        check_type(pm.group(1))
        types.append(" ".join(pm.group(1).split()))
        names.append(pm.group(2))
    return Signature(returns, m.group(2), tuple(types), tuple(names), m.start())


def _classes(sig: Signature) -> str:
    return "new Class<?>[]{" + ", ".join(raw_class(t) for t in sig.types) + "}"


def server(sig: Signature) -> str:
    """PrunekitRunner for the candidate: serve calls of the method on one new Solution()."""
    return (
        "import java.util.*;\n\npublic class PrunekitRunner {\n"
        "    public static void main(String[] args) throws Throwable {\n"
        f'        PrunekitWire.serve(Solution.class, "{sig.name}", {_classes(sig)});\n'
        "    }\n}\n"
    )


def client_method(sig: Signature) -> str:
    """The method under test, forwarding each call (goes inside the tests' Solution)."""
    params = ", ".join(f"{t} {n}" for t, n in zip(sig.types, sig.names))
    call = (
        f'PrunekitWire.call(Solution.class, "{sig.name}", {_classes(sig)}, '
        f"new Object[]{{{', '.join(sig.names)}}})"
    )
    body = f"{call};" if sig.returns == "void" else f"return ({sig.returns}) {call};"
    return f"    public {sig.returns} {sig.name}({params}) {{\n        {body}\n    }}\n}}\n"


CODEC = r"""
import java.io.*;
import java.lang.reflect.*;
import java.nio.charset.StandardCharsets;
import java.util.*;

final class PrunekitWire {
    static final class Bad extends RuntimeException {
        Bad(String why) { super(why, null, false, false); }
    }
    static final class Num {
        final String text;
        Num(String text) { this.text = text; }
    }
    static final class Obj {
        final List<String> keys = new ArrayList<>();
        final List<Object> values = new ArrayList<>();
    }
    static final Object NULL = new Object();

    // ---- JSON text -> a tree (NULL, Boolean, String, Num, List<Object>, Obj) ----
    private static final class Parser {
        private final String s;
        private int i;
        Parser(String s) { this.s = s; }
        Object all() {
            Object v = value(0);
            ws();
            if (i != s.length()) throw new Bad("text after the value");
            return v;
        }
        private void ws() {
            while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) i++;
        }
        private void expect(char c) {
            ws();
            if (i >= s.length() || s.charAt(i) != c) throw new Bad("expected " + c);
            i++;
        }
        private boolean lit(String w) {
            if (s.startsWith(w, i)) { i += w.length(); return true; }
            return false;
        }
        private String str() {
            expect('"');
            StringBuilder out = new StringBuilder();
            for (;;) {
                if (i >= s.length()) throw new Bad("unterminated string");
                char c = s.charAt(i++);
                if (c == '"') return out.toString();
                if (c != '\\') { out.append(c); continue; }
                if (i >= s.length()) throw new Bad("unterminated string");
                char e = s.charAt(i++);
                switch (e) {
                    case '"': case '\\': case '/': out.append(e); break;
                    case 'b': out.append('\b'); break;
                    case 'f': out.append('\f'); break;
                    case 'n': out.append('\n'); break;
                    case 'r': out.append('\r'); break;
                    case 't': out.append('\t'); break;
                    case 'u':
                        if (i + 4 > s.length()) throw new Bad("bad \\u escape");
                        try {
                            out.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        } catch (NumberFormatException x) {
                            throw new Bad("bad \\u escape");
                        }
                        i += 4;
                        break;
                    default: throw new Bad("bad escape");
                }
            }
        }
        private Object value(int depth) {
            if (depth > 2000) throw new Bad("nested too deeply");
            ws();
            if (i >= s.length()) throw new Bad("unexpected end");
            char c = s.charAt(i);
            if (c == '[') {
                i++;
                List<Object> out = new ArrayList<>();
                ws();
                if (i < s.length() && s.charAt(i) == ']') { i++; return out; }
                for (;;) {
                    out.add(value(depth + 1));
                    ws();
                    if (i < s.length() && s.charAt(i) == ',') { i++; continue; }
                    expect(']');
                    return out;
                }
            }
            if (c == '{') {
                i++;
                Obj out = new Obj();
                ws();
                if (i < s.length() && s.charAt(i) == '}') { i++; return out; }
                for (;;) {
                    ws();
                    out.keys.add(str());
                    expect(':');
                    out.values.add(value(depth + 1));
                    ws();
                    if (i < s.length() && s.charAt(i) == ',') { i++; continue; }
                    expect('}');
                    return out;
                }
            }
            if (c == '"') return str();
            if (lit("true")) return Boolean.TRUE;
            if (lit("false")) return Boolean.FALSE;
            if (lit("null")) return NULL;
            if (lit("NaN")) return new Num("NaN");
            if (lit("Infinity")) return new Num("Infinity");
            if (lit("-Infinity")) return new Num("-Infinity");
            int start = i;
            while (i < s.length() && "0123456789+-.eE".indexOf(s.charAt(i)) >= 0) i++;
            if (i == start) throw new Bad("not a JSON value");
            return new Num(s.substring(start, i));
        }
    }

    static Object parse(String line) { return new Parser(line).all(); }

    // ---- values -> JSON text, by declared type ----
    static void str(StringBuilder b, String s) {
        b.append('"');
        for (int k = 0; k < s.length(); k++) {
            char c = s.charAt(k);
            if (c == '"') b.append("\\\"");
            else if (c == '\\') b.append("\\\\");
            else if (c < 0x20 || c >= 0x7f) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        b.append('"');
    }

    static void real(StringBuilder b, double d) {
        b.append(Double.toString(d));  // NaN, Infinity, -Infinity, or digits with . or E
    }

    static Class<?> box(Class<?> c) {
        if (!c.isPrimitive()) return c;
        if (c == int.class) return Integer.class;
        if (c == long.class) return Long.class;
        if (c == short.class) return Short.class;
        if (c == byte.class) return Byte.class;
        if (c == double.class) return Double.class;
        if (c == float.class) return Float.class;
        if (c == boolean.class) return Boolean.class;
        if (c == char.class) return Character.class;
        return c;
    }

    static void scalar(StringBuilder b, Object v, Class<?> c) {
        if (!c.isInstance(v))
            throw new Bad("a " + v.getClass().getName() + " where " + c.getSimpleName() + " was declared");
        if (v instanceof Double || v instanceof Float) real(b, ((Number) v).doubleValue());
        else if (v instanceof Number || v instanceof Boolean) b.append(v.toString());
        else if (v instanceof Character) str(b, String.valueOf((char) (Character) v));
        else str(b, (String) v);
    }

    static final String[] TAGS = {"Integer", "Long", "Short", "Byte", "Double", "Float",
        "Boolean", "Character", "String"};

    static void tagged(StringBuilder b, Object v, int depth) {
        if (v == null) { b.append("null"); return; }
        for (String tag : TAGS) {
            if (v.getClass().getSimpleName().equals(tag) && v.getClass().getName().equals("java.lang." + tag)) {
                b.append("{\"t\":\"").append(tag).append("\",\"v\":");
                scalar(b, v, v.getClass());
                b.append('}');
                return;
            }
        }
        if (v instanceof List) {
            b.append("{\"t\":\"List\",\"v\":");
            enc(b, v, LIST_OF_OBJECT, depth + 1);
        } else if (v instanceof Map) {
            b.append("{\"t\":\"Map\",\"v\":");
            enc(b, v, MAP_OF_OBJECT, depth + 1);
        } else if (v instanceof Optional) {
            b.append("{\"t\":\"Optional\",\"v\":");
            enc(b, v, OPTIONAL_OF_OBJECT, depth + 1);
        } else {
            throw new Bad("cannot send a value of class " + v.getClass().getName());
        }
        b.append('}');
    }

    static List<Object> LIST_OF_OBJECT_FIELD;
    static Map<Object, Object> MAP_OF_OBJECT_FIELD;
    static Optional<Object> OPTIONAL_OF_OBJECT_FIELD;
    static final Type LIST_OF_OBJECT = field("LIST_OF_OBJECT_FIELD");
    static final Type MAP_OF_OBJECT = field("MAP_OF_OBJECT_FIELD");
    static final Type OPTIONAL_OF_OBJECT = field("OPTIONAL_OF_OBJECT_FIELD");

    static Type field(String name) {
        try {
            return PrunekitWire.class.getDeclaredField(name).getGenericType();
        } catch (NoSuchFieldException e) {
            throw new IllegalStateException(e);
        }
    }

    static void enc(StringBuilder b, Object v, Type t, int depth) {
        if (depth > 1000) throw new Bad("a value nested too deeply");
        if (t instanceof Class && ((Class<?>) t).isPrimitive() && v == null)
            throw new Bad("a null primitive");
        if (v == null) { b.append("null"); return; }
        if (t == Object.class) { tagged(b, v, depth); return; }
        if (t instanceof Class && ((Class<?>) t).isArray()) {
            Class<?> c = (Class<?>) t;
            if (!c.isInstance(v)) throw new Bad("a " + v.getClass().getName() + " where an array was declared");
            b.append('[');
            for (int k = 0; k < Array.getLength(v); k++) {
                if (k > 0) b.append(',');
                enc(b, Array.get(v, k), c.getComponentType(), depth + 1);
            }
            b.append(']');
            return;
        }
        if (t instanceof Class) { scalar(b, v, box((Class<?>) t)); return; }
        if (t instanceof GenericArrayType) {
            Type e = ((GenericArrayType) t).getGenericComponentType();
            if (!(v instanceof Object[])) throw new Bad("not an array");
            Object[] a = (Object[]) v;
            b.append('[');
            for (int k = 0; k < a.length; k++) {
                if (k > 0) b.append(',');
                enc(b, a[k], e, depth + 1);
            }
            b.append(']');
            return;
        }
        if (!(t instanceof ParameterizedType)) throw new Bad("cannot send a value of type " + t);
        ParameterizedType p = (ParameterizedType) t;
        Class<?> raw = (Class<?>) p.getRawType();
        Type[] args = p.getActualTypeArguments();
        if (!raw.isInstance(v)) throw new Bad("a " + v.getClass().getName() + " where " + raw.getSimpleName() + " was declared");
        if (v instanceof List) {
            b.append('[');
            int k = 0;
            for (Object x : (List<?>) v) {
                if (k++ > 0) b.append(',');
                enc(b, x, args[0], depth + 1);
            }
            b.append(']');
        } else if (v instanceof Map) {
            b.append('[');
            int k = 0;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (k++ > 0) b.append(',');
                b.append('[');
                enc(b, e.getKey(), args[0], depth + 1);
                b.append(',');
                enc(b, e.getValue(), args[1], depth + 1);
                b.append(']');
            }
            b.append(']');
        } else if (v instanceof Optional) {
            Optional<?> o = (Optional<?>) v;
            b.append('[');
            if (o.isPresent()) enc(b, o.get(), args[0], depth + 1);
            b.append(']');
        } else {
            throw new Bad("cannot send a value of type " + t);
        }
    }

    // ---- a tree -> a value of the declared type ----
    static String integer(Object n) {
        if (!(n instanceof Num)) throw new Bad("expected an integer");
        String s = ((Num) n).text;
        for (char c : s.toCharArray()) if (".eENI".indexOf(c) >= 0) throw new Bad("expected an integer");
        return s;
    }

    static Object scalarOf(Object n, Class<?> c, boolean intern) {
        try {
            if (c == Integer.class) return Integer.valueOf(Integer.parseInt(integer(n)));
            if (c == Long.class) return Long.valueOf(Long.parseLong(integer(n)));
            if (c == Short.class) return Short.valueOf(Short.parseShort(integer(n)));
            if (c == Byte.class) return Byte.valueOf(Byte.parseByte(integer(n)));
        } catch (NumberFormatException e) {
            throw new Bad("an integer out of range for " + c.getSimpleName());
        }
        if (c == Double.class || c == Float.class) {
            if (!(n instanceof Num)) throw new Bad("expected a number");
            double d;
            try {
                d = Double.parseDouble(((Num) n).text);
            } catch (NumberFormatException e) {
                throw new Bad("a bad number");
            }
            return c == Double.class ? (Object) d : (Object) (float) d;
        }
        if (c == Boolean.class) {
            if (!(n instanceof Boolean)) throw new Bad("expected a boolean");
            return n;
        }
        if (c == Character.class) {
            if (!(n instanceof String) || ((String) n).length() != 1) throw new Bad("expected one char");
            return ((String) n).charAt(0);
        }
        if (c == String.class) {
            if (!(n instanceof String)) throw new Bad("expected a string");
            return intern ? ((String) n).intern() : n;
        }
        throw new Bad("cannot receive a value of type " + c.getName());
    }

    static Object dec(Object n, Type t, int depth, boolean intern) {
        if (depth > 1000) throw new Bad("a value nested too deeply");
        if (n == NULL) {
            if (t instanceof Class && ((Class<?>) t).isPrimitive()) throw new Bad("a null primitive");
            return null;
        }
        if (t == Object.class) {
            if (!(n instanceof Obj) || ((Obj) n).keys.size() != 2 || !((Obj) n).keys.get(0).equals("t")
                || !((Obj) n).keys.get(1).equals("v") || !(((Obj) n).values.get(0) instanceof String))
                throw new Bad("expected a tagged value");
            String tag = (String) ((Obj) n).values.get(0);
            Object x = ((Obj) n).values.get(1);
            for (String s : TAGS) if (s.equals(tag)) return dec(x, box(classOf(tag)), depth + 1, intern);
            if (tag.equals("List")) return dec(x, LIST_OF_OBJECT, depth + 1, intern);
            if (tag.equals("Map")) return dec(x, MAP_OF_OBJECT, depth + 1, intern);
            if (tag.equals("Optional")) return dec(x, OPTIONAL_OF_OBJECT, depth + 1, intern);
            throw new Bad("an unknown tag " + tag);
        }
        if (t instanceof Class && ((Class<?>) t).isArray()) {
            Class<?> c = ((Class<?>) t).getComponentType();
            if (!(n instanceof List)) throw new Bad("expected an array");
            List<?> items = (List<?>) n;
            Object a = Array.newInstance(c, items.size());
            for (int k = 0; k < items.size(); k++) Array.set(a, k, dec(items.get(k), c, depth + 1, intern));
            return a;
        }
        if (t instanceof Class) return scalarOf(n, box((Class<?>) t), intern);
        if (t instanceof GenericArrayType) {
            Type e = ((GenericArrayType) t).getGenericComponentType();
            Class<?> rc = (Class<?>) ((ParameterizedType) e).getRawType();
            if (!(n instanceof List)) throw new Bad("expected an array");
            List<?> items = (List<?>) n;
            Object a = Array.newInstance(rc, items.size());
            for (int k = 0; k < items.size(); k++) Array.set(a, k, dec(items.get(k), e, depth + 1, intern));
            return a;
        }
        if (!(t instanceof ParameterizedType)) throw new Bad("cannot receive a value of type " + t);
        ParameterizedType p = (ParameterizedType) t;
        Class<?> raw = (Class<?>) p.getRawType();
        Type[] args = p.getActualTypeArguments();
        if (!(n instanceof List)) throw new Bad("expected a list for " + raw.getSimpleName());
        List<?> items = (List<?>) n;
        if (raw == List.class || raw == ArrayList.class) {
            ArrayList<Object> out = new ArrayList<>(items.size());
            for (Object x : items) out.add(dec(x, args[0], depth + 1, intern));
            return out;
        }
        if (raw == Map.class || raw == HashMap.class) {
            LinkedHashMap<Object, Object> out = new LinkedHashMap<>();
            for (Object kv : items) {
                if (!(kv instanceof List) || ((List<?>) kv).size() != 2) throw new Bad("expected a [key, value] pair");
                out.put(dec(((List<?>) kv).get(0), args[0], depth + 1, intern),
                        dec(((List<?>) kv).get(1), args[1], depth + 1, intern));
            }
            return out;
        }
        if (raw == Optional.class) {
            if (items.isEmpty()) return Optional.empty();
            if (items.size() != 1 || items.get(0) == NULL) throw new Bad("expected an Optional");
            return Optional.of(dec(items.get(0), args[0], depth + 1, intern));
        }
        throw new Bad("cannot receive a value of type " + t);
    }

    static Class<?> classOf(String tag) {
        try {
            return Class.forName("java.lang." + tag);
        } catch (ClassNotFoundException e) {
            throw new Bad("an unknown tag " + tag);
        }
    }

    // ---- the pipes ----
    private static InputStream in;
    private static OutputStream out;
    private static final ByteArrayOutputStream buf = new ByteArrayOutputStream();

    static void die(int code, String why) {
        System.err.println("prunekit: " + why);
        System.err.flush();
        Runtime.getRuntime().halt(code);
    }

    static void open() {
        if (in != null) return;
        String i = System.getenv("PRUNEKIT_IN_FD"), o = System.getenv("PRUNEKIT_OUT_FD");
        if (i == null || o == null) die(@HARNESS@, "PRUNEKIT_IN_FD/PRUNEKIT_OUT_FD are not set");
        try {
            in = new FileInputStream("/proc/self/fd/" + Integer.parseInt(i));
            out = new FileOutputStream("/proc/self/fd/" + Integer.parseInt(o));
        } catch (IOException | NumberFormatException e) {
            die(@HARNESS@, "cannot open the pipes: " + e);
        }
    }

    static String recv() {
        try {
            for (;;) {
                int c = in.read();
                if (c < 0) return null;
                if (c == '\n') {
                    String line = new String(buf.toByteArray(), StandardCharsets.UTF_8);
                    buf.reset();
                    return line;
                }
                buf.write(c);
            }
        } catch (IOException e) {
            return null;
        }
    }

    static void send(String text) {
        try {
            out.write((text + "\n").getBytes(StandardCharsets.UTF_8));
            out.flush();
        } catch (IOException e) {
            die(@GONE@, "the other side is gone");
        }
    }

    static String frame(String key, String text) {
        StringBuilder b = new StringBuilder("{\"").append(key).append("\":");
        str(b, text.length() > 300 ? text.substring(0, 300) : text);
        return b.append('}').toString();
    }

    static String describe(Throwable t) {
        try {
            return String.valueOf(t);
        } catch (Throwable u) {
            return t.getClass().getName();
        }
    }

    // the candidate's side: answer calls of cls.name(params) on one new instance
    static void serve(Class<?> cls, String name, Class<?>[] params) throws Throwable {
        open();
        Method m = cls.getDeclaredMethod(name, params);
        m.setAccessible(true);
        Constructor<?> make = cls.getDeclaredConstructor();
        make.setAccessible(true);
        Object target = make.newInstance();
        Type[] pts = m.getGenericParameterTypes();
        Type rt = m.getGenericReturnType();
        send("{\"ready\":true}");
        String line;
        while ((line = recv()) != null) {
            send(answer(target, m, pts, rt, line));
        }
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }

    static String answer(Object target, Method m, Type[] pts, Type rt, String line) {
        Object[] args = new Object[pts.length];
        try {
            Object req = parse(line);
            if (!(req instanceof List) || ((List<?>) req).size() != pts.length)
                throw new Bad("a call with the wrong number of arguments");
            for (int k = 0; k < pts.length; k++) args[k] = dec(((List<?>) req).get(k), pts[k], 0, false);
        } catch (Throwable e) {
            return frame("bad", describe(e));
        }
        Object r;
        try {
            r = m.invoke(target, args);
        } catch (InvocationTargetException e) {
            return frame("raise", describe(e.getCause()));
        } catch (Throwable e) {
            return frame("raise", describe(e));
        }
        try {
            StringBuilder b = new StringBuilder("{\"value\":");
            if (rt == void.class) b.append("null");
            else enc(b, r, rt, 0);
            return b.append('}').toString();
        } catch (Bad e) {
            return frame("bad", e.getMessage());
        } catch (Throwable e) {
            return frame("bad", describe(e));
        }
    }

    // the tests' side: send one call of cls.name(params) and return the answer
    static Object call(Class<?> cls, String name, Class<?>[] params, Object[] args) {
        open();
        Method m = null;
        try {
            m = cls.getDeclaredMethod(name, params);
        } catch (NoSuchMethodException e) {
            die(@HARNESS@, "no method " + name);
        }
        Type[] pts = m.getGenericParameterTypes();
        StringBuilder b = new StringBuilder("[");
        try {
            for (int k = 0; k < args.length; k++) {
                if (k > 0) b.append(',');
                enc(b, args[k], pts[k], 0);
            }
        } catch (RuntimeException e) {
            die(@HARNESS@, "cannot send a call: " + e.getMessage());
        }
        send(b.append(']').toString());
        String line = recv();
        if (line == null) die(@GONE@, "the candidate stopped answering");
        Object a = null;
        try {
            a = parse(line);
        } catch (Bad e) {
            die(@HARNESS@, "an unreadable frame from the relay: " + e.getMessage());
        }
        if (!(a instanceof Obj) || ((Obj) a).keys.size() != 1) die(@HARNESS@, "an unexpected frame");
        String key = ((Obj) a).keys.get(0);
        Object val = ((Obj) a).values.get(0);
        if (key.equals("raise")) throw new RuntimeException("the candidate raised: " + val);
        if (key.equals("bad")) die(@BAD@, "the candidate returned a value that cannot be sent: " + val);
        if (!key.equals("value")) die(@GONE@, "the candidate stopped answering: " + val);
        Type rt = m.getGenericReturnType();
        if (rt == void.class) return null;
        try {
            return dec(val, rt, 0, true);
        } catch (Bad e) {
            die(@BAD@, "the candidate's answer does not fit the declared type: " + e.getMessage());
        }
        return null;
    }
}
"""


def codec() -> str:
    return (
        CODEC.replace("@GONE@", str(GONE_EXIT))
        .replace("@BAD@", str(BAD_EXIT))
        .replace("@HARNESS@", str(HARNESS_EXIT))
    )
