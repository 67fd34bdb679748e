#!/usr/bin/env bash
# Installs what the conformance suite's aarch64 column needs, idempotently (skips what is present):
# Debian's aarch64 cross linker and libc, qemu-user to run aarch64 binaries, and Rust's aarch64 std.
# .cargo/config.toml points cargo at the linker and at qemu-aarch64 as the runner for that target.
set -euo pipefail
packages=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || packages+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null 2>&1 || packages+=(qemu-user)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || packages+=(libc6-dev-arm64-cross)
if [ "${#packages[@]}" -gt 0 ]; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y --no-install-recommends \
    qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
else
  echo "cross toolchain: apt packages present"
fi
if rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "cross toolchain: rust target aarch64-unknown-linux-gnu present"
else
  rustup target add aarch64-unknown-linux-gnu
fi
