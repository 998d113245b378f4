"""Sortable event ids (UUIDv7, RFC 9562) derived from a timestamp and a seed.

Derived rather than random so that normalizers stay pure: the same callback
received at the same moment always yields the same ids.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_MILLIS_MASK = (1 << 48) - 1
_VERSION_AND_VARIANT = 0x7 << 76 | 0b10 << 62
_RAND_B_MASK = (1 << 62) - 1


def uuid7(moment: datetime, seed: bytes) -> str:
    """A UUIDv7 whose 48-bit prefix is `moment` in ms and whose rest hashes `seed`."""
    millis = (moment - _EPOCH) // _MILLISECOND & _MILLIS_MASK
    rand = int.from_bytes(hashlib.sha256(seed).digest()[:10], "big")
    # rand_a: the top 12 of the 80 hashed bits; rand_b: the low 62.
    value = millis << 80 | _VERSION_AND_VARIANT | (rand >> 68 & 0xFFF) << 64 | rand & _RAND_B_MASK
    digits = f"{value:032x}"  # what str(uuid.UUID(int=value)) gives, at a third of the cost
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
