"""cmdline: the guest kernel runs with exactly the command line Kata generated (-append)."""

from __future__ import annotations

from katatest.fixtures.guests import group_reads

CMDLINE = "cat /proc/cmdline"
reads = group_reads((CMDLINE,))


def test_guest_cmdline_equals_generated_append(guest, cell, reads):
    generated = guest.generated_option("-append")
    assert len(generated) == 1, "Kata passes one -append"
    expected = generated[0]
    extra = cell.expectation("cmdline_extra")  # harness self-test: a wrong expectation must fail
    if extra:
        expected = f"{expected} {extra}"
    actual = reads.text(CMDLINE)
    assert actual == expected


def test_append_was_not_overridden(guest):
    """Launch overrides never touch the kernel command line."""
    assert not [o for o in guest.plan.overrides if "-append" in o.before]
    assert guest.plan.argv[guest.plan.argv.index("-append") + 1] == guest.generated_option("-append")[0]
