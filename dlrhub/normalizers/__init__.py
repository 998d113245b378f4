"""Provider normalizers: raw callbacks in, common events out.

`NORMALIZERS` maps a provider's code name to its normalizer; `PROVIDER_ALIASES`
maps the names users write in configuration to code names.
"""

from __future__ import annotations

from dlrhub.normalizers import nrs360
from dlrhub.normalizers.base import (
    DEFAULT_DLR_PARAMS,
    NormalizeError,
    Normalizer,
    RawCallback,
    SourceOptions,
)

NORMALIZERS: dict[str, Normalizer] = {"nrs360": nrs360.normalize}
PROVIDER_ALIASES: dict[str, str] = {"360nrs": "nrs360", "nrs360": "nrs360"}

__all__ = [
    "DEFAULT_DLR_PARAMS",
    "NORMALIZERS",
    "PROVIDER_ALIASES",
    "NormalizeError",
    "Normalizer",
    "RawCallback",
    "SourceOptions",
]
