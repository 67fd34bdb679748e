#!/usr/bin/env bash
# Installs what the trainer's GPU tests (feature `gpu`) need, idempotently (skips what is present): the Vulkan loader
# and Mesa's Vulkan drivers, whose lavapipe is a software Vulkan device, so wgpu finds an adapter on a machine
# without a GPU. The tests also need XDG_RUNTIME_DIR set (scripts/test.sh exports it).
set -euo pipefail
packages=()
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 \
  || packages+=(mesa-vulkan-drivers)
ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || packages+=(libvulkan1)
if [ "${#packages[@]}" -gt 0 ]; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y --no-install-recommends "${packages[@]}"
else
  echo "gpu: Vulkan loader and Mesa lavapipe present"
fi
