"""The provider registry: every provider is whole in its folder, and shared code names none."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dlrhub.outbound.account import AccountConfig
from dlrhub.providers import ALIASES, PROVIDERS, client_for
from dlrhub.providers.base import Provider
from dlrhub.testing import FakeProvider

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dlrhub"


def _provider_words() -> set[str]:
    words = set(ALIASES)
    for provider in PROVIDERS.values():
        words.add(provider.title.lower())
    return words


# Kannel's dlr-url escapes are a wire format several providers share (360NRS's
# notificationUrl, SMS gateways), named after the gateway that defined it.
SHARED_FORMATS = {PACKAGE / "normalizers" / "kannel.py"}


def _shared_modules() -> list[Path]:
    """Every module of the package outside `dlrhub/providers/`, but the shared formats."""
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if PACKAGE / "providers" not in path.parents and path not in SHARED_FORMATS
    )


def _docstring_nodes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _names_in_code(path: Path, words: set[str]) -> list[str]:
    """Provider names in the identifiers and string literals of one module (docs aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstring_nodes(tree)
    hits = []
    for node in ast.walk(tree):
        texts: list[str] = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                texts.append(node.value)
        elif isinstance(node, ast.Name):
            texts.append(node.id)
        elif isinstance(node, ast.Attribute):
            texts.append(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module:
            texts.append(node.module)
        elif isinstance(node, ast.alias):
            texts.append(node.name)
        for text in texts:
            lowered = text.lower()
            hits += [
                f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}: {text!r}"
                for word in words
                if word in lowered
            ]
    return hits


def test_no_provider_is_named_in_shared_code() -> None:
    words = _provider_words()
    hits = [hit for path in _shared_modules() for hit in _names_in_code(path, words)]
    # The registry names the zero-configuration provider; nothing else may.
    assert hits == [], "shared code names a provider:\n" + "\n".join(hits)


def test_the_check_finds_a_provider_name() -> None:
    sample = PACKAGE / "providers" / "nrs360" / "__init__.py"
    assert _names_in_code(sample, _provider_words())


@pytest.mark.parametrize("provider", PROVIDERS.values(), ids=list(PROVIDERS))
def test_each_provider_is_whole(provider: Provider) -> None:
    assert (ROOT / provider.docs).is_file()
    assert (ROOT / provider.status_table).is_file()
    assert provider.source is not None or provider.account is not None
    if provider.source is not None:
        kinds = [route.kind for route in provider.source.routes]
        assert kinds and len(kinds) == len(set(kinds))
        assert all(route.methods for route in provider.source.routes)
    if provider.fake is not None:
        assert issubclass(provider.fake_class(), FakeProvider)


def test_names_and_aliases_are_unique() -> None:
    names = [name for provider in PROVIDERS.values() for name in provider.names]
    assert len(names) == len(set(names))
    assert all(
        ALIASES[name] == provider.name for provider in PROVIDERS.values() for name in provider.names
    )


def test_an_account_of_a_provider_without_a_client_is_refused() -> None:
    account = AccountConfig(name="a", provider="carrier-pigeon", base_url="http://unused")
    with pytest.raises(KeyError):
        client_for(account)


PUSHING = [provider for provider in PROVIDERS.values() if provider.source is not None]


@pytest.mark.parametrize("provider", PUSHING, ids=[provider.name for provider in PUSHING])
def test_the_openapi_document_says_how_each_route_authenticates_and_answers(
    provider: Provider,
) -> None:
    from dlrhub.receiver.openapi import openapi_document

    assert provider.source is not None
    document = openapi_document()
    auth = provider.source.auth
    for route in provider.source.routes:
        for method in route.methods:
            operation = document["paths"][f"/hooks/{{source}}/{route.kind}"][method.lower()]
            assert all({name: []} in operation["security"] for name in auth.security)
            assert all(name in document["components"]["securitySchemes"] for name in auth.security)
            refused = "401" if auth.challenge is not None else "403"
            assert auth.failure in operation["responses"][refused]["description"]
            answer = operation["responses"]["200"]["content"]
            if route.ack is not None:
                assert answer["text/plain"]["schema"]["enum"] == [route.ack.decode()]
