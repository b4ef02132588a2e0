#!/usr/bin/env bash
# Installs everything katatest needs on a fresh Debian (bookworm) machine; cheap when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  qemu-system-x86 qemu-system-arm qemu-efi-aarch64 qemu-utils
  busybox-static linux-source-6.1 gcc-aarch64-linux-gnu
  build-essential flex bison bc libelf-dev libssl-dev cpio xz-utils
  e2fsprogs fdisk util-linux procps chromium
)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "katatest setup: installing Debian packages: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
echo "katatest setup: ready (.venv)"
