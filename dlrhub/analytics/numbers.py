"""Country and mobile operator of a recipient, from the `phonenumbers` library's data.

A number written without `+` is read in the region its source or account names
(`default_region`), else the `[analytics]` one; a number that does not parse
or is not valid there (an e-mail address, a short code, garbage) has country and
operator "", unless written with its country code (then the country). The
operator is the carrier that was allotted the number's range: number
portability makes it approximate (docs/analytics.md says so).

Looking a number up costs about 16 us; answers are cached per prefix (the number
without its last `SUBSCRIBER_DIGITS` digits, which no carrier range splits), at
most `CACHE_SIZE` prefixes, so rolling up a busy hour parses each range once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import phonenumbers
from phonenumbers import CountryCodeSource, carrier

SUBSCRIBER_DIGITS = 3
CACHE_SIZE = 65_536
MAX_LENGTH = 32  # longer is not a phone number; not parsed (phonenumbers caps at 250)


class NumberPlaces:
    """`place(recipient, region)`: (country ISO code, operator name), both "" if unknown."""

    def __init__(self, default_region: str | None = None) -> None:
        self.default_region = default_region
        self._cache: dict[tuple[str, str], tuple[str, str]] = {}

    def place(self, recipient: str | None, region: str | None = None) -> tuple[str, str]:
        if not recipient or len(recipient) > MAX_LENGTH:
            return "", ""
        region = (region or self.default_region or "").upper()
        digits = "".join(character for character in recipient if character.isdigit())
        international = recipient.lstrip().startswith("+")
        if len(digits) <= SUBSCRIBER_DIGITS + 2:
            return "", ""
        key = ("+" if international else region, digits[:-SUBSCRIBER_DIGITS])
        found = self._cache.get(key)
        if found is None:
            found = _look_up(recipient, region)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = found
        return found

    def place_for(self, regions: Mapping[str, str]) -> SourcePlaces:
        """`place` with each source's or account's own region (`regions`, by name)."""
        return source_places(self.default_region, tuple(sorted(regions.items())))


class SourcePlaces:
    """A `Place`: (recipient, source name) -> `NumberPlaces.place` in the source's region.

    Pickled as its settings alone: a process it is sent to (the rollups' folding
    process, dlrhub/store/folding.py) gets that process's own instance for them,
    whose cache stays warm from one page to the next.
    """

    __slots__ = ("_numbers", "_regions", "settings")

    def __init__(self, default_region: str | None, regions: tuple[tuple[str, str], ...]) -> None:
        self.settings = (default_region, regions)
        self._numbers = NumberPlaces(default_region)
        self._regions = dict(regions)

    def __call__(self, recipient: str | None, source: str) -> tuple[str, str]:
        return self._numbers.place(recipient, self._regions.get(source))

    def __reduce__(self) -> tuple[Callable[..., SourcePlaces], tuple[object, ...]]:
        return source_places, self.settings


@functools.cache
def source_places(default_region: str | None, regions: tuple[tuple[str, str], ...]) -> SourcePlaces:
    """The one `SourcePlaces` of this process for these settings (a config has one)."""
    return SourcePlaces(default_region, regions)


def _look_up(recipient: str, region: str) -> tuple[str, str]:
    """A valid number's country and operator; an invalid one's country if it was written.

    A short code or a number of another country read in `region` is not valid
    there: it is placed nowhere. A number written with its country code keeps that
    country even if not valid (Mexico's "+52 1" mobile prefix, dropped in 2019).
    """
    try:
        number = phonenumbers.parse(recipient, region or None, keep_raw_input=True)
    except phonenumbers.NumberParseException:
        return "", ""
    if phonenumbers.is_valid_number(number):
        country = phonenumbers.region_code_for_number(number) or ""
        return _known(country), carrier.name_for_valid_number(number, "en") or ""
    if number.country_code is None or (
        number.country_code_source == CountryCodeSource.FROM_DEFAULT_COUNTRY
    ):
        return "", ""
    return _known(phonenumbers.region_code_for_country_code(number.country_code)), ""


def _known(country: str) -> str:
    return "" if country in ("ZZ", "001") else country
