"""Errors of the launcher."""

from __future__ import annotations

from katatest.errors import KatatestError


class LaunchError(KatatestError):
    """QEMU, virtiofsd or the supervisor failed to start; carries QEMU's stderr and the argv."""

    def __init__(self, message: str, stderr: str = "", argv: list[str] | None = None) -> None:
        self.stderr = stderr
        self.argv = list(argv or [])
        first = next((line for line in stderr.splitlines() if line.strip()), "")
        super().__init__(f"{message}: {first}" if first else message)


class PlanError(KatatestError):
    """An override cannot be applied to the generated argv."""


class UnknownVirtiofsdFlag(PlanError):
    """An argument of the virtiofsd argv that no Rust virtiofsd accepts (a generator bug or a bad
    ``virtio_fs_extra_args``): an error, never a reason to skip."""

    def __init__(self, flag: str) -> None:
        self.flag = flag
        super().__init__(f"virtiofsd {flag}: not an option of the Rust virtiofsd (1.x) Kata's argv is written for")


class UntranslatableFlag(PlanError):
    """A Rust virtiofsd flag with no equivalent in the C virtiofsd installed here."""

    def __init__(self, flag: str, why: str) -> None:
        self.flag = flag
        super().__init__(f"virtiofsd {flag}: {why}")
