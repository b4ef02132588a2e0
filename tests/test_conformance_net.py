"""Every Kata 3.0.0 vector with pod network endpoints: argv, virtiofsd argv and rejections equal Kata's."""

from __future__ import annotations

import pytest

from katatest.conformance.check import check_vector
from katatest.errors import KatatestError
from katatest.generate.render import render_file
from katatest.host.flags import parse_flags
from tests.conformance_files import net_vectors

VECTORS = net_vectors()


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_net_vector(vector):
    problems = check_vector(vector)
    assert not problems, f"{vector.id}: " + "; ".join(problems)


def test_net_vector_count_is_complete():
    """Guards against a broken glob silently testing nothing: 45 named + 90 random, some rejected."""
    assert len(VECTORS) == 135
    assert sum(v.kind == "named" for v in VECTORS) == 45
    assert sum(v.rejected for v in VECTORS) >= 7
    assert sum("--net-endpoint" in v.flags for v in VECTORS) >= 100


CREATE_NETWORK = "createNetwork: "


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.rejected], ids=lambda v: v.id)
def test_rejected_at_kata_stage(vector):
    """A vector Kata's createNetwork rejects is rejected by ours with Kata's reason (ifb0's netlink bytes
    decoded); one rejected at another stage is not rejected by the network step."""
    facts, _ = parse_flags(" ".join(vector.flags))
    with pytest.raises(KatatestError) as err:
        render_file(vector.toml, facts)
    kata = vector.file(".err").read_text().strip()
    ours = str(err.value)
    assert len(ours.splitlines()) == 1
    if kata.startswith(CREATE_NETWORK):
        assert kata.split(" [")[0] in ours
    else:
        assert CREATE_NETWORK not in ours, f"Kata fails before the network: {kata}"
