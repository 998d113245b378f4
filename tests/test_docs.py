"""The documentation shipped with the code says what the code does."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from dlrhub.config import ConfigError, load_config
from dlrhub.settings_values import read_secret

ROOT = Path(__file__).resolve().parents[1]


def test_nrs360_provider_page_is_the_module_docstring() -> None:
    module = ast.parse((ROOT / "dlrhub/providers/nrs360/callbacks.py").read_text(encoding="utf-8"))
    docstring = ast.get_docstring(module)
    page = (ROOT / "docs/providers/nrs360.md").read_text(encoding="utf-8")
    assert page == f"# {docstring}\n", "regenerate docs/providers/nrs360.md from the docstring"


def test_example_deploy_configuration_is_valid() -> None:
    # With the secret given as deploy/README.md says (its placeholder is refused below).
    env = {"DLRHUB_SOURCES__NRS360__TOKEN": "Vq3-kD8_mZt2xLw9PbN4"}
    config = load_config(ROOT / "deploy/dlrhub.toml.example", env=env)
    assert [source.name for source in config.sources] == ["nrs360"]
    assert config.server.public_url == "https://dlr.example.com"


# A token in a shipped example: `token = "..."`, `auth_token = '...'`, `DLRHUB_..._TOKEN=...`.
SHIPPED_TOKEN = re.compile(
    r"""^\s*(?:\w*token)\s*=\s*["']([^"']*)["']|DLRHUB_\w*TOKEN=([^\s`"']+)""",
    re.MULTILINE | re.IGNORECASE,
)


def shipped_token_values() -> list[tuple[str, str]]:
    """(file, value) of every token-looking value in the examples users copy from."""
    files = [ROOT / "README.md", ROOT / "deploy/dlrhub.toml.example", ROOT / "deploy/README.md"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    found = []
    for file in files:
        for match in SHIPPED_TOKEN.finditer(file.read_text(encoding="utf-8")):
            found.append((str(file.relative_to(ROOT)), match.group(1) or match.group(2)))
    return found


def test_every_token_in_a_shipped_example_is_refused_without_being_echoed() -> None:
    values = shipped_token_values()
    # The example configuration's own token, the README's and the Twilio page's at least.
    assert {file for file, _ in values} >= {
        "deploy/dlrhub.toml.example",
        "README.md",
        "docs/providers/twilio.md",
    }
    for file, value in values:
        with pytest.raises(ConfigError) as refused:
            read_secret("sources[0].token", value)
        assert value not in str(refused.value), (file, value)
