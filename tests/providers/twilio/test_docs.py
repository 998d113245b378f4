"""The Twilio page shipped with the code says what the code does."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from dlrhub.providers import PROVIDERS
from dlrhub.providers.twilio.callbacks import STATUSES

ROOT = Path(__file__).resolve().parents[3]
DOCSTRING = ast.get_docstring(
    ast.parse((ROOT / "dlrhub/providers/twilio/callbacks.py").read_text(encoding="utf-8"))
)


def test_twilio_provider_page_is_the_module_docstring() -> None:
    page = (ROOT / PROVIDERS["twilio"].docs).read_text(encoding="utf-8")
    assert page == f"# {DOCSTRING}\n", "regenerate docs/providers/twilio.md from the docstring"


def test_the_status_table_is_the_code_s() -> None:
    assert DOCSTRING is not None
    rows = re.findall(r"^\| `([a-z_]+)` +\| `([a-z]+)` +\|", DOCSTRING, re.MULTILINE)
    assert dict(rows) == {word: status.value for word, status in STATUSES.items()}
    assert len(rows) == len(STATUSES)


def test_the_readme_lists_twilio() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "| Twilio |" in readme
    assert "docs/providers/twilio.md" in readme
