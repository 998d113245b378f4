"""The keys of a `smsgateway` source: no `dlr_plus_as_space`, since both gateways form-encode."""

from __future__ import annotations

import pytest

from dlrhub.config import ConfigError, parse_config

TOKEN = "gateway-token-0123456789"


def test_dlr_plus_as_space_is_refused_where_the_format_decides() -> None:
    source = {"name": "gw", "provider": "kannel", "token": TOKEN, "dlr_plus_as_space": True}
    with pytest.raises(ConfigError) as error:
        parse_config({"sources": [source]})
    assert str(error.value).startswith("sources[0].dlr_plus_as_space: unknown key")


def test_a_360nrs_source_keeps_the_choice() -> None:
    source = {"name": "n", "provider": "360nrs", "token": TOKEN, "dlr_plus_as_space": True}
    (read,) = parse_config({"sources": [source]}).sources
    assert read.options.dlr_plus_as_space is True
