"""What changes when one config moves from one Kata release to another: an aligned diff of the QEMU argv and the
shared-fs daemon argv, each differing argument with its provenance (config keys, host facts, release behaviours).

The random parts of an argv (the ``-uuid`` value, ``char-``/``image-``/``iothread-`` ids) are normalised before
aligning, so only real differences are listed."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from katatest.conformance.vectors import normalise
from katatest.errors import KatatestError
from katatest.generate.provenance import Arg
from katatest.generate.render import render_doc
from katatest.generate.rendered import Rendered
from katatest.host.facts import HostFacts

STREAMS = ("argv", "daemon")


@dataclass(frozen=True)
class ChangedArg:
    """One argument only one side has: its position in that side's argv, value and provenance."""

    index: int
    value: str
    sources: tuple[str, ...]

    @property
    def behaviours(self) -> tuple[str, ...]:
        """The release behaviours among the sources (``release.qemu.qmp`` ...)."""
        return tuple(s for s in self.sources if s.startswith("release."))


@dataclass(frozen=True)
class Hunk:
    """One place where the two argvs differ: what the old release passes there and what the new one does."""

    stream: str  # "argv" or "daemon"
    after: str  # the last argument both share before the hunk ('' at the start)
    removed: tuple[ChangedArg, ...]
    added: tuple[ChangedArg, ...]

    def as_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "after": self.after,
                "removed": [vars(a) for a in self.removed], "added": [vars(a) for a in self.added]}


@dataclass
class ReleaseDiff:
    """Every difference between rendering as ``old`` and as ``new`` (empty hunks: the same launch)."""

    old: str
    new: str
    hunks: list[Hunk] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # release -> why it rejects the config

    def stream(self, name: str) -> list[Hunk]:
        return [h for h in self.hunks if h.stream == name]


def _attributed(arg: Arg, index: int, value: str, omitted_by_other: list[Arg]) -> ChangedArg:
    """An argument of one side; when the other side leaves it out on purpose, the behaviour that does so joins
    its sources."""
    extra: list[str] = []
    for omitted in omitted_by_other:
        if value == omitted.value or value.startswith(omitted.value + ","):
            extra.extend(omitted.sources)
    return ChangedArg(index, value, tuple(dict.fromkeys(arg.sources + tuple(extra))))


def diff_args(stream: str, old: list[Arg], new: list[Arg], old_omitted: list[Arg] | None = None,
              new_omitted: list[Arg] | None = None) -> list[Hunk]:
    """The aligned difference of two argvs (difflib over the normalised values), one Hunk per change."""
    old_values, new_values = normalise([a.value for a in old]), normalise([a.value for a in new])
    matcher = difflib.SequenceMatcher(a=old_values, b=new_values, autojunk=False)
    hunks = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        after = old_values[i1 - 1] if i1 > 0 else ""
        removed = tuple(_attributed(old[i], i, old_values[i], new_omitted or []) for i in range(i1, i2))
        added = tuple(_attributed(new[j], j, new_values[j], old_omitted or []) for j in range(j1, j2))
        hunks.append(Hunk(stream, after, removed, added))
    return hunks


def _render(doc: dict[str, Any], facts: HostFacts, source: str, release: str,
            hypervisor: str | None) -> Rendered | str:
    """The rendering, or the reason this release rejects the config."""
    try:
        return render_doc(doc, facts, source, hypervisor, release)
    except KatatestError as err:
        return str(err)


def diff_releases(old_doc: dict[str, Any], new_doc: dict[str, Any], facts: HostFacts, old: str, new: str,
                  old_source: str = "", new_source: str = "", hypervisor: str | None = None) -> ReleaseDiff:
    """Render ``old_doc`` as Kata ``old`` and ``new_doc`` (usually the same config) as Kata ``new`` for the same
    host, and list every argv and daemon-argv difference. An unknown release is an error; a release that
    rejects the config is recorded in ``rejected`` (no hunks)."""
    result = ReleaseDiff(old, new)
    before = _render(old_doc, facts, old_source, old, hypervisor)
    after = _render(new_doc, facts, new_source or old_source, new, hypervisor)
    for release, rendered in ((old, before), (new, after)):
        if isinstance(rendered, str):
            if rendered.startswith("unknown Kata release"):
                raise KatatestError(rendered)
            result.rejected[release] = rendered
    if result.rejected:
        return result
    assert isinstance(before, Rendered) and isinstance(after, Rendered)
    result.hunks = diff_args("argv", before.argv, after.argv, before.omitted, after.omitted)
    result.hunks += diff_args("daemon", before.daemon or [], after.daemon or [], before.omitted, after.omitted)
    return result


def render_text(diff: ReleaseDiff, config: str) -> list[str]:
    """The diff as lines: a header, then per hunk its place and each removed (-) / added (+) argument with its
    sources on the next line."""
    lines = [f"{config}: Kata {diff.old} -> {diff.new}"]
    for release, why in diff.rejected.items():
        lines.append(f"  Kata {release} rejects this configuration: {why}")
    if diff.rejected:
        return lines
    if not diff.hunks:
        lines.append("  no differences")
    for hunk in diff.hunks:
        place = f"after {hunk.after}" if hunk.after else "at the start"
        lines.append(f"{hunk.stream} ({place}):")
        for sign, args in (("-", hunk.removed), ("+", hunk.added)):
            for arg in args:
                lines.append(f"  {sign} {arg.value}")
                lines.append(f"      from: {', '.join(arg.sources)}")
        if hunk.after == "-append" and len(hunk.removed) == len(hunk.added) == 1:
            lines.append(f"  kernel parameters: {' '.join(param_changes(hunk.removed[0].value, hunk.added[0].value))}")
    return lines


def param_changes(old: str, new: str) -> list[str]:
    """The kernel parameters one command line drops (-) and the other adds (+), in order."""
    matcher = difflib.SequenceMatcher(a=old.split(), b=new.split(), autojunk=False)
    changes = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            changes += [f"-{p}" for p in old.split()[i1:i2]] + [f"+{p}" for p in new.split()[j1:j2]]
    return changes
