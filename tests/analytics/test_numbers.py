"""Recipients' country and operator: with and without '+', per-source regions, never raising."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlrhub.analytics import numbers
from dlrhub.analytics.numbers import NumberPlaces

CASES = [
    # recipient, region asked, default region, (country, operator)
    ("+34612345678", None, None, ("ES", "Syma")),
    ("+34 612 34 56 78", None, "CO", ("ES", "Syma")),
    ("612345678", "ES", None, ("ES", "Syma")),
    ("612345678", None, "ES", ("ES", "Syma")),
    ("0034612345678", "ES", None, ("ES", "Syma")),
    ("+34912345678", None, None, ("ES", "")),  # a Madrid landline: no operator
    ("+573151234567", None, None, ("CO", "Movistar")),
    ("3151234567", None, "CO", ("CO", "Movistar")),
    ("+57 300 123-4567", None, None, ("CO", "")),  # libphonenumber names no carrier for 300
    ("3001234567", "CO", "ES", ("CO", "")),  # the source's region wins over the default
    ("+525512345678", None, None, ("MX", "")),
    ("5512345678", "MX", None, ("MX", "")),
    ("5512345678", None, "MX", ("MX", "")),
    # "+52 1" is Mexico's mobile prefix before 2019: not valid any more, still Mexican
    ("+5215512345678", None, None, ("MX", "")),
    # A number that is not valid where it is read is not placed there
    ("3001234567", "ES", None, ("", "")),
    ("3151234567", None, None, ("", "")),  # no region to read it in
    # Not phone numbers
    ("ana@example.com", None, "CO", ("", "")),
    ("890123", None, "CO", ("", "")),  # a short code
    ("12345", None, "CO", ("", "")),
    ("ACME", None, "CO", ("", "")),
    ("", None, "CO", ("", "")),
    (None, None, "CO", ("", "")),
    ("+" + "5" * 40, None, None, ("", "")),
]


@pytest.mark.parametrize(("recipient", "region", "default", "expected"), CASES)
def test_numbers_are_placed_in_their_country_and_operator(
    recipient: str | None, region: str | None, default: str | None, expected: tuple[str, str]
) -> None:
    assert NumberPlaces(default).place(recipient, region) == expected


def test_each_source_reads_numbers_in_its_own_region() -> None:
    place = NumberPlaces("CO").place_for({"madrid": "ES", "cdmx": "mx"})
    assert place("612345678", "madrid") == ("ES", "Syma")
    assert place("5512345678", "cdmx") == ("MX", "")
    assert place("3151234567", "bogota") == ("CO", "Movistar")
    assert place("+34612345678", "cdmx") == ("ES", "Syma")


recipients = (
    st.text(max_size=40)
    | st.from_regex(r"\+?[0-9 ()-]{0,20}", fullmatch=True)
    | st.builds(
        lambda plus, code, rest: f"{plus}{code}{rest}",
        st.sampled_from(["", "+", "00"]),
        st.sampled_from(["", "34", "57", "52", "521", "1"]),
        st.text("0123456789", min_size=4, max_size=12),
    )
)
regions = (
    st.none()
    | st.sampled_from(["CO", "ES", "MX", "es", "", "XX", "ZZ", "001"])
    | st.text(max_size=4)
)


@given(recipients, regions, regions)
def test_any_text_is_placed_or_not_without_raising(
    recipient: str, region: str | None, default: str | None
) -> None:
    country, operator = NumberPlaces(default).place(recipient, region)
    assert isinstance(country, str) and isinstance(operator, str)
    assert country or not operator


@given(st.lists(st.tuples(recipients, regions), max_size=20), regions)
def test_the_prefix_cache_answers_as_a_lookup_without_it(
    asked: list[tuple[str, str | None]], default: str | None
) -> None:
    cached = NumberPlaces(default)
    for recipient, region in asked:
        uncached = NumberPlaces(default).place(recipient, region)
        assert cached.place(recipient, region) == uncached


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(numbers, "CACHE_SIZE", 10)
    places = NumberPlaces("CO")
    for number in range(50):
        assert places.place(f"+5731{number:02d}234567")[0] == "CO"
    assert len(places._cache) <= 10
