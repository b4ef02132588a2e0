"""Content-addressed cache of guest assets under ``~/.cache/katatest`` (or ``$KATATEST_CACHE_DIR``).

Each asset set lives in a directory named by a hash of all its inputs, is built in a temporary sibling
and renamed into place, is guarded by an ``flock`` per asset (safe for pytest-xdist workers), and carries
a ``SHA256SUMS`` verified on every use.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from katatest.assets import busybox, kernel
from katatest.assets.errors import AssetError
from katatest.assets.image import build_image
from katatest.assets.initrd import write_initrd
from katatest.assets.progress import Progress
from katatest.assets.tree import guest_tree, init_script

ARCHES = ("amd64", "arm64")
ROOTFS_BUILDER_VERSION = "2"
# The rootfs builder's own sources are part of its key: editing any of them rebuilds the initrd/image.
ROOTFS_BUILDER_MODULES = ("busybox.py", "cpio.py", "image.py", "initrd.py", "tree.py")
CACHE_ENV = "KATATEST_CACHE_DIR"
OVERRIDE_ENV = {"kernel": "KATATEST_KERNEL", "initrd": "KATATEST_INITRD", "image": "KATATEST_IMAGE"}
INITRD_NAME = "initrd.img"
IMAGE_NAME = "rootfs.img"
SUMS = "SHA256SUMS"


@dataclass(frozen=True)
class GuestAssets:
    """Paths of a guest's boot assets; ``image_size`` is the image file size in bytes."""

    arch: str
    kernel: Path
    initrd: Path
    image: Path
    image_size: int


@dataclass(frozen=True)
class AssetState:
    """One asset's status: ``state`` is built, missing, override or unavailable."""

    name: str
    state: str
    path: Path | None
    detail: str = ""


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "katatest"


def _check_arch(arch: str) -> None:
    if arch not in ARCHES:
        raise AssetError(f"unknown guest architecture {arch!r} (known: {', '.join(ARCHES)})")


def _digest(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]


def kernel_key(arch: str) -> str:
    """Hash of fragments, kernel source identity (path, size, mtime) and the builder version."""
    src = kernel.KERNEL_SOURCE
    st = src.stat() if src.exists() else None
    return _digest({"builder": kernel.KERNEL_BUILDER_VERSION, "arch": arch,
                    "fragments": kernel.fragments_for(arch),
                    "source": [str(src), st.st_size if st else None, int(st.st_mtime) if st else None]})


def _builder_sources_digest() -> str:
    h = hashlib.sha256()
    for name in ROOTFS_BUILDER_MODULES:
        h.update(Path(__file__).with_name(name).read_bytes())
    return h.hexdigest()


def rootfs_key(arch: str) -> str:
    """Hash of busybox package versions (guest + host applet list), the init script and the builder."""
    return _digest({"builder": ROOTFS_BUILDER_VERSION, "sources": _builder_sources_digest(), "arch": arch,
                    "busybox": busybox.candidate_version(arch, cache_root() / "memo"),
                    "host_busybox": busybox.host_package_version(),
                    "init": hashlib.sha256(init_script()).hexdigest()})


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_sums(directory: Path, names: list[str]) -> None:
    (directory / SUMS).write_text("".join(f"{_sha256(directory / n)}  {n}\n" for n in names))


def _verified(directory: Path) -> bool:
    """True when every file listed in SHA256SUMS is present with its recorded hash."""
    sums = directory / SUMS
    if not sums.is_file():
        return False
    for line in sums.read_text().splitlines():
        digest, name = line.split(None, 1)
        if not (directory / name).is_file() or _sha256(directory / name) != digest:
            return False
    return True


def writable_cache_dir(sub: str = "locks") -> Path:
    """``cache_root()/sub``, created; AssetError (one actionable line) when the cache is not writable."""
    path = cache_root() / sub
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".probe-")  # noqa: SIM115 - closed just below
        probe.close()
    except OSError as exc:
        raise AssetError(f"guest asset cache {cache_root()} is not writable ({exc.strerror}: {exc.filename}); "
                         f"set ${CACHE_ENV} to a writable directory") from None
    return path


@contextmanager
def _locked(name: str, progress: Progress | None = None) -> Iterator[None]:
    """Exclusive per-asset lock across processes (pytest-xdist workers, parallel CLI runs)."""
    locks = writable_cache_dir("locks")
    with open(locks / f"{name}.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress is not None:
                progress(f"{name}: waiting for another process building it")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _ensure_dir(arch: str, kind: str, key: str, build, progress: Progress) -> Path:
    """The verified cache directory for (arch, kind, key), built by ``build(tmpdir)`` if needed."""
    final = cache_root() / arch / f"{kind}-{key}"
    with _locked(f"{arch}-{kind}", progress):
        if final.is_dir():
            if _verified(final):
                return final
            progress(f"{kind} {arch}: cached copy in {final} fails its SHA256SUMS; rebuilding")
            shutil.rmtree(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{kind}-", dir=final.parent))
        try:
            names = build(tmp)
            _write_sums(tmp, names)
            tmp.chmod(0o755)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        progress(f"{kind} {arch}: cached in {final}")
        return final


def _build_kernel_into(arch: str, progress: Progress):
    def build(tmp: Path) -> list[str]:
        image = kernel.build_kernel(arch, tmp, progress)
        return [image.name, "kernel.config"]
    return build


def _build_rootfs_into(arch: str, progress: Progress):
    def build(tmp: Path) -> list[str]:
        progress(f"rootfs {arch}: fetching busybox-static:{arch}")
        bb = busybox.fetch_busybox(arch, tmp / "busybox-bin")
        entries = guest_tree(bb.path)
        progress(f"rootfs {arch}: writing initrd (busybox {bb.version}, {len(entries)} entries)")
        write_initrd(entries, tmp / INITRD_NAME)
        progress(f"rootfs {arch}: writing DAX image")
        build_image(entries, tmp / IMAGE_NAME)
        shutil.rmtree(tmp / "busybox-bin")
        (tmp / "busybox.version").write_text(bb.version + "\n")
        return [INITRD_NAME, IMAGE_NAME, "busybox.version"]
    return build


def _override(name: str, given: str | os.PathLike | None) -> Path | None:
    value = given if given is not None else os.environ.get(OVERRIDE_ENV[name])
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        source = "argument" if given is not None else f"${OVERRIDE_ENV[name]}"
        raise AssetError(f"{name} {path} (from {source}) does not exist")
    return path


def ensure_assets(arch: str, progress: Progress = print, kernel_path: str | os.PathLike | None = None,
                  initrd_path: str | os.PathLike | None = None,
                  image_path: str | os.PathLike | None = None) -> GuestAssets:
    """Return the guest assets for ``arch``, building (and caching) whatever is missing.

    Explicit paths (arguments, else ``$KATATEST_KERNEL``/``$KATATEST_INITRD``/``$KATATEST_IMAGE``) are
    used as given instead of cached builds.
    """
    _check_arch(arch)
    k, i, m = (_override("kernel", kernel_path), _override("initrd", initrd_path),
               _override("image", image_path))
    if k is None:
        kdir = _ensure_dir(arch, "kernel", kernel_key(arch), _build_kernel_into(arch, progress), progress)
        k = kdir / Path(kernel.kernel_target(arch).image_path).name
    if i is None or m is None:
        rdir = _ensure_dir(arch, "rootfs", rootfs_key(arch), _build_rootfs_into(arch, progress), progress)
        i = i or rdir / INITRD_NAME
        m = m or rdir / IMAGE_NAME
    return GuestAssets(arch, k, i, m, m.stat().st_size)


def _cached_state(name: str, directory: Path, file: str) -> AssetState:
    path = directory / file
    if not path.is_file():
        return AssetState(name, "missing", path)
    return AssetState(name, "built" if _verified(directory) else "corrupt", path)


def asset_status(arch: str) -> list[AssetState]:
    """Status of kernel, initrd and image for ``arch`` (without building anything)."""
    _check_arch(arch)
    states = []
    kdir = cache_root() / arch / f"kernel-{kernel_key(arch)}"
    try:
        rdir: Path | None = cache_root() / arch / f"rootfs-{rootfs_key(arch)}"
        reason = ""
    except AssetError as exc:
        rdir, reason = None, str(exc)
    for name, directory, file in (("kernel", kdir, Path(kernel.kernel_target(arch).image_path).name),
                                  ("initrd", rdir, INITRD_NAME), ("image", rdir, IMAGE_NAME)):
        env = os.environ.get(OVERRIDE_ENV[name])
        if env:
            states.append(AssetState(name, "override", Path(env), f"from ${OVERRIDE_ENV[name]}"))
        elif directory is None:
            states.append(AssetState(name, "unavailable", None, reason))
        else:
            states.append(_cached_state(name, directory, file))
    return states


def clean(arch: str) -> list[Path]:
    """Remove every cached asset of ``arch``; returns the removed directories."""
    _check_arch(arch)
    removed = []
    base = cache_root() / arch
    for kind in ("kernel", "rootfs"):
        with _locked(f"{arch}-{kind}"):
            for d in sorted(base.glob(f"{kind}-*")) + sorted(base.glob(f".tmp-{kind}-*")):
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
    return removed
