"""What makes up a .wasm module: bytes per section, and code bytes per crate (from the name section's demangled
function names), largest first, with each part's gzipped size when compressed alone.

usage: python3 bench/wasm/sizes.py <module.wasm> [top]

Read the module cargo writes before wasm-bindgen and wasm-opt (it keeps the name section), e.g.
$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm/tern_wasm.wasm; the shipped module's functions are these, optimised.
Names are Rust's legacy mangling (`_ZN…E`) or v0 (`_R…`), demangled here only as far as the crate name; a function
LLVM merged or outlined is counted under the name it kept.
"""
import gzip
import re
import sys
from collections import defaultdict

SECTIONS = {0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
            7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "datacount"}


def leb(data, at):
    """An unsigned LEB128 at `at`: (value, next offset)."""
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def sections(data):
    if data[:4] != b"\0asm":
        raise SystemExit("not a wasm module")
    at = 8
    while at < len(data):
        kind = data[at]
        size, body = leb(data, at + 1)
        end = body + size
        name = SECTIONS.get(kind, f"unknown {kind}")
        if kind == 0:
            length, start = leb(data, body)
            name = "custom: " + data[start:start + length].decode("utf-8", "replace")
            body = start + length
        yield kind, name, data[body:end]
        at = end


def imported_functions(body):
    count, at = leb(body, 0)
    functions = 0
    for _ in range(count):
        for _ in range(2):  # module and field names
            length, at = leb(body, at)
            at += length
        kind = body[at]
        at += 1
        if kind == 0:  # function: type index
            _, at = leb(body, at)
            functions += 1
        elif kind == 1:  # table: reftype, limits
            at += 1
            flags, at = leb(body, at)
            _, at = leb(body, at)
            if flags & 1:
                _, at = leb(body, at)
        elif kind == 2:  # memory: limits
            flags, at = leb(body, at)
            _, at = leb(body, at)
            if flags & 1:
                _, at = leb(body, at)
        elif kind == 3:  # global: valtype, mutability
            at += 2
        else:
            raise SystemExit(f"import kind {kind} not understood")
    return functions


def function_names(body):
    names = {}
    at = 0
    while at < len(body):
        kind = body[at]
        size, start = leb(body, at + 1)
        if kind == 1:
            count, pos = leb(body, start)
            for _ in range(count):
                index, pos = leb(body, pos)
                length, pos = leb(body, pos)
                names[index] = body[pos:pos + length].decode("utf-8", "replace")
                pos += length
        at = start + size
    return names


def crate_of(name):
    legacy = re.match(r"_ZN(\d+)", name)
    if legacy:
        length = int(legacy.group(1))
        start = legacy.end()
        crate = name[start:start + length]
        # A trait impl's first path segment is `_$LT$Type$u20$as$u20$Trait$GT$`: count it under the type's crate.
        inner = re.match(r"_?\$LT\$(?:\$RF\$)?(?:mut\$u20\$)?([A-Za-z0-9_]+)", crate)
        return inner.group(1) if inner else crate
    v0 = re.match(r"_R[A-Za-z]*?C(?:s[0-9a-z]*_)?(\d+)", name)
    if v0:
        start = v0.end()
        return name[start:start + int(v0.group(1))]
    return name.split("::")[0] if "::" in name else "(unmangled: libc, compiler-builtins, glue)"


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    data = open(path, "rb").read()
    parts = list(sections(data))
    print(f"{path}: {len(data) / 1024:.0f} KiB raw, {len(gzip.compress(data, 9)) / 1024:.0f} KiB gzipped")
    print("section                          KiB raw   KiB gzipped alone")
    for _, name, body in parts:
        print(f"  {name[:30]:30} {len(body) / 1024:8.0f} {len(gzip.compress(body, 9)) / 1024:10.0f}")
    imports = next((imported_functions(body) for kind, _, body in parts if kind == 2), 0)
    names = next((function_names(body) for kind, name, body in parts if name == "custom: name"), {})
    code = next((body for kind, _, body in parts if kind == 10), None)
    if code is None:
        return
    if not names:
        print("no name section: build with names (the cargo output, before wasm-opt) for the per-crate table")
        return
    count, at = leb(code, 0)
    by_crate = defaultdict(lambda: [0, 0, bytearray()])
    for i in range(count):
        size, start = leb(code, at)
        crate = crate_of(names.get(imports + i, ""))
        entry = by_crate[crate]
        entry[0] += size
        entry[1] += 1
        entry[2] += code[start:start + size]
        at = start + size
    total = sum(v[0] for v in by_crate.values())
    print(f"code by crate ({count} functions, {total / 1024:.0f} KiB), largest {top}:")
    print("  crate                              KiB raw  functions  KiB gzipped alone")
    for crate, (size, functions, body) in sorted(by_crate.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {crate[:34]:34} {size / 1024:8.0f} {functions:10} {len(gzip.compress(bytes(body), 9)) / 1024:12.0f}")


if __name__ == "__main__":
    main()
