"""Provider normalizers: raw callbacks in, common events out.

`NORMALIZERS` maps a provider's code name to its normalizer; `PROVIDER_ALIASES`
maps the names users write in configuration to code names.
"""

from __future__ import annotations

from dlrhub.normalizers import conectaline, nrs360_reports, onurix, uvox
from dlrhub.normalizers.base import (
    DEFAULT_DLR_PARAMS,
    NormalizeError,
    Normalizer,
    RawCallback,
    SourceOptions,
)

# nrs360_reports reads dlrhub's own 360NRS exchanges and hands callbacks to nrs360.
NORMALIZERS: dict[str, Normalizer] = {
    "nrs360": nrs360_reports.normalize,
    "onurix": onurix.normalize,
    "uvox": uvox.normalize,
    "conectaline": conectaline.normalize,
}
PROVIDER_ALIASES: dict[str, str] = {
    "360nrs": "nrs360",
    "nrs360": "nrs360",
    "onurix": "onurix",
    "uvox": "uvox",
    "conectaline": "conectaline",
}

__all__ = [
    "DEFAULT_DLR_PARAMS",
    "NORMALIZERS",
    "PROVIDER_ALIASES",
    "NormalizeError",
    "Normalizer",
    "RawCallback",
    "SourceOptions",
]
