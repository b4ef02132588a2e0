"""Build a Kata-style guest kernel: ``make tinyconfig`` + the repo's fragments, everything built in."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from katatest.assets.errors import AssetError
from katatest.assets.progress import Progress, run_logged

KERNEL_BUILDER_VERSION = "1"
KERNEL_SOURCE = Path("/usr/src/linux-source-6.1.tar.xz")


@dataclass(frozen=True)
class KernelTarget:
    """How to build the kernel for one guest architecture."""

    arch: str
    make_vars: tuple[str, ...]
    image_target: str
    image_path: str
    fragments: tuple[str, ...]


TARGETS = {
    "amd64": KernelTarget("amd64", ("ARCH=x86_64",), "bzImage", "arch/x86/boot/bzImage",
                          ("common.config", "amd64.config")),
    "arm64": KernelTarget("arm64", ("ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"), "Image",
                          "arch/arm64/boot/Image", ("common.config", "arm64.config")),
}


def kernel_target(arch: str) -> KernelTarget:
    try:
        return TARGETS[arch]
    except KeyError:
        raise AssetError(f"unknown guest architecture {arch!r} (known: {', '.join(TARGETS)})") from None


def fragment_text(name: str) -> str:
    return resources.files("katatest").joinpath("data", "kernel", name).read_text()


def fragments_for(arch: str) -> dict[str, str]:
    """Fragment file name -> text, in merge order."""
    return {name: fragment_text(name) for name in kernel_target(arch).fragments}


def parse_config(text: str) -> dict[str, str]:
    """Kconfig text -> {"CONFIG_X": value}; ``# CONFIG_X is not set`` reads as ``"n"``."""
    options: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            options[line[2:-len(" is not set")]] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            options[key] = value
    return options


def missing_options(wanted: dict[str, str], final: dict[str, str]) -> list[str]:
    """Wanted options the final .config lacks or has with another value ("n" matches absent)."""
    missing = []
    for key, value in wanted.items():
        got = final.get(key, "n")
        if got != value:
            missing.append(f"{key}={value} (got {got})")
    return missing


def wanted_options(arch: str) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for text in fragments_for(arch).values():
        wanted.update(parse_config(text))
    return wanted


def _make(target: KernelTarget, src: Path, log: Path, progress: Progress, *goals: str) -> None:
    cmd = ["make", f"-j{os.cpu_count() or 1}", *target.make_vars, *goals]
    run_logged(cmd, src, log, progress, f"kernel {target.arch} ({' '.join(goals)})")


def configure(arch: str, src: Path, log: Path, progress: Progress) -> dict[str, str]:
    """tinyconfig + fragments + olddefconfig in ``src``; verify every fragment option survived."""
    target = kernel_target(arch)
    progress(f"kernel {arch}: make tinyconfig + {', '.join(target.fragments)}")
    _make(target, src, log, progress, "tinyconfig")
    frag_dir = src / "katatest-fragments"
    frag_dir.mkdir(exist_ok=True)
    paths = []
    for name, text in fragments_for(arch).items():
        (frag_dir / name).write_text(text)
        paths.append(str(frag_dir / name))
    env = dict(os.environ, **dict(v.split("=", 1) for v in target.make_vars))
    run_logged(["scripts/kconfig/merge_config.sh", "-m", ".config", *paths], src, log, progress,
               f"kernel {arch} (merge_config)", env=env)
    _make(target, src, log, progress, "olddefconfig")
    final = parse_config((src / ".config").read_text())
    missing = missing_options(wanted_options(arch), final)
    if missing:
        raise AssetError(f"kernel {arch}: options dropped by Kconfig (missing dependencies?): "
                         + ", ".join(missing))
    progress(f"kernel {arch}: .config verified ({len(wanted_options(arch))} fragment options present)")
    return final


def extract_source(dest: Path, log: Path, progress: Progress, source: Path = KERNEL_SOURCE) -> Path:
    if not source.is_file():
        raise AssetError(f"kernel source {source} not found (apt-get install linux-source-6.1)")
    progress(f"kernel: extracting {source.name}")
    run_logged(["tar", "-xf", str(source), "-C", str(dest), "--strip-components=1"], dest, log, progress,
               "kernel source extraction")
    return dest


def build_kernel(arch: str, out_dir: Path, progress: Progress = print,
                 source: Path = KERNEL_SOURCE) -> Path:
    """Build the guest kernel into ``out_dir`` (kernel image + kernel.config + kernel-build.log)."""
    target = kernel_target(arch)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "kernel-build.log"
    work = Path(tempfile.mkdtemp(prefix=f"katatest-kernel-{arch}-"))
    try:
        extract_source(work, log, progress, source)
        configure(arch, work, log, progress)
        progress(f"kernel {arch}: make {target.image_target} (log: {log})")
        _make(target, work, log, progress, target.image_target)
        image = out_dir / Path(target.image_path).name
        shutil.copyfile(work / target.image_path, image)
        shutil.copyfile(work / ".config", out_dir / "kernel.config")
        progress(f"kernel {arch}: {image} ({image.stat().st_size} bytes)")
        return image
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_config_only(arch: str, progress: Progress = print, source: Path = KERNEL_SOURCE) -> list[str]:
    """Configure without building; return the missing options (for fragment development)."""
    work = Path(tempfile.mkdtemp(prefix=f"katatest-kconfig-{arch}-"))
    log = work.parent / f"{work.name}.log"
    try:
        extract_source(work, log, progress, source)
        try:
            configure(arch, work, log, progress)
            return []
        except AssetError as exc:
            return [str(exc)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
        log.unlink(missing_ok=True)

