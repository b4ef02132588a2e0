#!/usr/bin/env bash
# Installs everything katatest needs on a fresh Debian (bookworm) machine; cheap when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  qemu-system-x86 qemu-system-arm qemu-efi-aarch64 qemu-utils
  busybox-static linux-source-6.1 gcc-aarch64-linux-gnu
  build-essential flex bison bc libelf-dev libssl-dev cpio xz-utils
  e2fsprogs fdisk util-linux mount procps qemu-system-common chromium iproute2  # mount: losetup (block hot-plug)
  mmdebstrap  # the private Debian roots of the QEMU 10.0/11.1 and Rust virtiofsd builds (katatest assets build --qemu)
)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# The arm64 guest's busybox-static comes from Debian's arm64 archive (apt-get download at asset build time).
need_update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "katatest setup: enabling the arm64 package architecture (for busybox-static:arm64)"
  as_root dpkg --add-architecture arm64
  need_update=1
fi
if [ ${#missing[@]} -gt 0 ] || [ "$need_update" = 1 ]; then
  as_root apt-get update -q
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "katatest setup: installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  # Debian's own python3 needs python3-venv for this (other Pythons ship venv + ensurepip)
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
  fi
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
echo "katatest setup: ready (.venv)"
