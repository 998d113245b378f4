"""The documentation shipped with the code says what the code does."""

from __future__ import annotations

import ast
from pathlib import Path

from dlrhub.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_nrs360_provider_page_is_the_module_docstring() -> None:
    module = ast.parse((ROOT / "dlrhub/providers/nrs360/callbacks.py").read_text(encoding="utf-8"))
    docstring = ast.get_docstring(module)
    page = (ROOT / "docs/providers/nrs360.md").read_text(encoding="utf-8")
    assert page == f"# {docstring}\n", "regenerate docs/providers/nrs360.md from the docstring"


def test_example_deploy_configuration_is_valid() -> None:
    config = load_config(ROOT / "deploy/dlrhub.toml.example", env={})
    assert [source.name for source in config.sources] == ["nrs360"]
    assert config.server.public_url == "https://dlr.example.com"
