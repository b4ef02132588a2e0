"""The project's own goldens: `katatest explain` output (argv + provenance) for every named QEMU vector.

Regenerate with ``KATATEST_REGEN=1 pytest tests/test_golden_explain.py`` and review the diff.
"""

from __future__ import annotations

import pytest

from katatest.conformance.vectors import normalise
from katatest.generate.explain import explain_args
from katatest.generate.provenance import Arg
from katatest.generate.render import render_file
from katatest.host.flags import parse_flags
from tests.conformance_files import GOLDEN, NET_GOLDENS, net_vectors, qemu_vectors, regenerate

NAMED = [v for v in qemu_vectors() if v.kind == "named" and not v.rejected]
NAMED += [v for v in net_vectors() if v.kind == "named" and v.name in NET_GOLDENS]


def explain_text(vector) -> str:
    facts, _ = parse_flags(" ".join(vector.flags))
    args = render_file(vector.toml, facts).argv
    stable = [Arg(value, a.sources) for value, a in zip(normalise([a.value for a in args]), args)]
    return "\n".join(explain_args(stable)) + "\n"


@pytest.mark.parametrize("vector", NAMED, ids=[v.name for v in NAMED])
def test_explain_golden(vector):
    golden = GOLDEN / "explain" / f"{vector.name}.txt"
    text = explain_text(vector)
    if regenerate():
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"missing golden {golden.name}: run KATATEST_REGEN=1 pytest {__file__}"
    assert golden.read_text() == text, f"{golden.name} differs: review, then KATATEST_REGEN=1 to accept"


def test_every_argument_has_a_source():
    for vector in NAMED:
        facts, _ = parse_flags(" ".join(vector.flags))
        for arg in render_file(vector.toml, facts).argv:
            assert arg.sources, f"{vector.name}: {arg.value!r} has no provenance"
