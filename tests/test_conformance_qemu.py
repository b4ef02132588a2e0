"""Every Kata 3.0.0 QEMU vector: our argv must equal Kata's, argument by argument (after normalisation)."""

from __future__ import annotations

import pytest

from katatest.errors import ConfigError
from katatest.kata.flags import parse_flags
from katatest.render import render_file
from katatest.vectors import first_difference
from tests.conformance_files import qemu_vectors

VECTORS = qemu_vectors()


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_qemu_vector(vector):
    facts, _ = parse_flags(" ".join(vector.flags))
    if vector.rejected:
        with pytest.raises(ConfigError) as err:
            render_file(vector.toml, facts)
        assert str(err.value).strip(), "a rejection must say why"
        return
    rendered = render_file(vector.toml, facts)
    difference = first_difference(vector.expected_lines(".argv"), rendered.argv_values())
    assert not difference, f"{vector.id}: {difference}"
    for suffix in (".virtiofsd.argv", ".nydusd.argv"):
        expected = vector.expected_lines(suffix)
        if expected is not None:
            assert rendered.daemon is not None, f"{vector.id}: no shared-fs daemon rendered"
            difference = first_difference(expected, rendered.daemon_values())
            assert not difference, f"{vector.id}{suffix}: {difference}"


def test_vector_count_is_complete():
    """Guards against a broken glob silently testing nothing."""
    assert len(VECTORS) >= 250
    assert sum(v.rejected for v in VECTORS) >= 40
