"""What every provider's normalizers share: the raw callback, options, typed error.

Each provider's own normalizers live in its folder under `dlrhub/providers/`.
"""

from __future__ import annotations

from dlrhub.normalizers.base import NormalizeError, Normalizer, SourceOptions

__all__ = ["NormalizeError", "Normalizer", "SourceOptions"]
