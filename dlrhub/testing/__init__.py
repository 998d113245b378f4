"""Fake provider APIs (Onurix, UVox, Conectaline, 360NRS) for tests and local demos.

Each fake is a Starlette app speaking its provider's documented wire format,
with scripted status progressions and fault injection (`dlrhub.testing.faults`).
`python -m dlrhub.testing` serves all four on loopback; see docs/outbound.md.
"""

from dlrhub.testing.conectaline import FakeConectaline
from dlrhub.testing.faults import FakeProvider, Fault
from dlrhub.testing.nrs360 import FakeNrs360
from dlrhub.testing.onurix import FakeOnurix
from dlrhub.testing.uvox import FakeUvox

__all__ = ["FakeConectaline", "FakeNrs360", "FakeOnurix", "FakeProvider", "FakeUvox", "Fault"]
