"""Runs tern's WASI runner (pkg/wasi/tern-wasi.wasm) under wasmtime (the PyPI package's engine): one request on
stdin, the response on stdout, the package folder preopened read-only as /package.

usage: run_wasmtime.py <tern-wasi.wasm> <package-dir> <request-file> <response-file> [tern-wasi options...]

Exits with the guest's exit status; the guest's stderr is passed through.
"""
import sys
import tempfile

from wasmtime import Engine, ExitTrap, Linker, Module, Store, WasiConfig


def main(wasm, package_dir, request, response, *options):
    engine = Engine()
    module = Module.from_file(engine, wasm)
    linker = Linker(engine)
    linker.define_wasi()
    store = Store(engine)
    with tempfile.NamedTemporaryFile(suffix=".stderr") as stderr:
        wasi = WasiConfig()
        wasi.argv = ["tern-wasi", "/package", *options]
        wasi.stdin_file = request
        wasi.stdout_file = response
        wasi.stderr_file = stderr.name
        wasi.preopen_dir(package_dir, "/package", fs_mutable=False)
        store.set_wasi(wasi)
        instance = linker.instantiate(store, module)
        code = 0
        try:
            instance.exports(store)["_start"](store)
        except ExitTrap as exit_trap:
            code = exit_trap.code
        sys.stderr.write(open(stderr.name).read())
    return code


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
