"""dlrhub: receive, normalize, store and fan out messaging delivery receipts.

`dlrhub.verify_webhook` is loaded on first use, so that importing any part of
dlrhub (the receiver, say) does not import the sinks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dlrhub.sinks.signing import verify_webhook as verify_webhook


def __getattr__(name: str) -> Any:
    if name == "verify_webhook":  # by name: no static import of the sinks from here
        return importlib.import_module("dlrhub.sinks.signing").verify_webhook
    raise AttributeError(f"module 'dlrhub' has no attribute {name!r}")
