"""The SMS gateway's documentation says what its code does."""

from __future__ import annotations

import ast
from pathlib import Path

from dlrhub.providers import PROVIDERS

ROOT = Path(__file__).resolve().parents[3]


def test_provider_page_is_the_module_docstring() -> None:
    provider = PROVIDERS["smsgateway"]
    source = (ROOT / provider.status_table).read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source))
    page = (ROOT / provider.docs).read_text(encoding="utf-8")
    assert page == f"# {docstring}\n", f"regenerate {provider.docs} from the docstring"


def test_readme_lists_the_provider_and_its_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "[docs/providers/smsgateway.md](docs/providers/smsgateway.md)" in readme
