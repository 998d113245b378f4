"""`[analytics]`: the region numbers without `+` are read in, for country and operator.

```toml
[analytics]
default_region = "ES"                      # for every source and account not named below
regions = { onurix-co = "CO", uvox-mx = "MX" }   # by source or account name
```

Without a region, only numbers written with `+` and a country code are placed; the
others count under country and operator "" ("unknown" in the figures).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

import phonenumbers

from dlrhub.settings_schema import Convert
from dlrhub.settings_values import ConfigError


def read_region(path: str, value: object) -> str:
    if not isinstance(value, str) or value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(
            path, f'must be a two-letter region code such as "ES" or "CO", not {value!r}'
        )
    return value.upper()


def read_regions(path: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(path, "must be a table of source or account names to region codes")
    return {str(name): read_region(f"{path}.{name}", region) for name, region in value.items()}


Region = Annotated[str, Convert(read_region)]


@dataclass(frozen=True, slots=True)
class AnalyticsConfig:
    default_region: Region | None = None
    regions: Annotated[Mapping[str, str], Convert(read_regions)] = field(default_factory=dict)
