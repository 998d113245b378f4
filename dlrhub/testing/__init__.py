"""Fake provider APIs for tests and local demos.

Each provider's fake lives in its folder (`dlrhub/providers/<name>/fake.py`): a
Starlette app speaking the provider's documented wire format, with scripted
status progressions and fault injection (`dlrhub.testing.faults`).
`python -m dlrhub.testing` serves every provider's fake on loopback; see
docs/outbound.md.
"""

from dlrhub.testing.faults import FakeProvider, Fault

__all__ = ["FakeProvider", "Fault"]
