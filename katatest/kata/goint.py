"""Go's fixed-width integer conversions (two's-complement wrap-around) and Kata's unit helpers."""

from __future__ import annotations

MIB = 1024 * 1024


def wrap(value: int, bits: int, signed: bool) -> int:
    """``value`` converted to a Go integer of ``bits`` bits, wrapping like Go does."""
    value %= 1 << bits
    if signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def int32(value: int) -> int:
    return wrap(value, 32, True)


def int64(value: int) -> int:
    return wrap(value, 64, True)


def uint64(value: int) -> int:
    return wrap(value, 64, False)


def go_div(a: int, b: int) -> int:
    """Go integer division: truncates toward zero."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


def revert_bytes(num: int) -> int:
    """``utils.RevertBytes``: re-read a decimal (x1000) quantity with x1024 scaling factors."""
    thousands, rest = divmod(num, 1000)
    return num if thousands == 0 else 1024 * revert_bytes(thousands) + rest


def mib_to_bytes(mib: int) -> int:
    """``int64((utils.MemUnit(mib) * utils.MiB).ToBytes())``."""
    return int64(uint64(mib * MIB))


def bits_per_second_to_bytes(rate: int) -> int:
    """Kata's int64 bits/s rate limit as the bytes/s token bucket size clh and fc expect."""
    return int64(revert_bytes(uint64(go_div(rate, 8))))
