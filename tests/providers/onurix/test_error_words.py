"""Onurix 520 bodies: which words mean bad credentials, an unknown id, or an outage."""

from __future__ import annotations

import pytest

from dlrhub.outbound.settings import AccountConfig
from dlrhub.providers.onurix.client import ErrorKind, ErrorWords

DEFAULT = ErrorWords.of(AccountConfig(name="onx", provider="onurix", base_url="http://unused"))

CASES: list[tuple[str, str, ErrorKind]] = [
    ("520", "Parametros invalidos", "outage"),  # the document's only example
    ("520", "Error interno del sistema", "outage"),
    ("error", "", "outage"),
    ("520", "Key invalida", "auth"),
    ("520", "Cliente no autorizado", "auth"),
    ("520", "Credenciales invalidas", "auth"),
    ("520", "Fallo de AUTENTICACIÓN", "auth"),
    ("invalid_token", "", "auth"),
    ("520", "El id del cliente no existe", "auth"),  # the credentials come first
    ("520", "ID invalido", "unknown_id"),
    ("520", "El mensaje no existe", "unknown_id"),
    ("520", "Mensaje  no   encontrado", "unknown_id"),
    ("520", "Message not found", "unknown_id"),
    ("520", "Parametros invalidos: identificador", "unknown_id"),
    ("520", "Monkey business", "outage"),  # `key` inside a word does not count
]


@pytest.mark.parametrize(("code", "msg", "kind"), CASES)
def test_default_words(code: str, msg: str, kind: ErrorKind) -> None:
    assert DEFAULT.kind(code, msg) == kind


def test_an_account_replaces_the_default_words() -> None:
    account = AccountConfig(
        name="onx",
        provider="onurix",
        base_url="http://unused",
        settings={"auth_words": "clave, acceso denegado", "unknown_id_words": "desconocido"},
    )
    words = ErrorWords.of(account)
    assert words.kind("520", "Clave incorrecta") == "auth"
    assert words.kind("520", "Acceso   Denegado") == "auth"
    assert words.kind("520", "Key invalida") == "outage"
    assert words.kind("520", "Mensaje no encontrado") == "outage"
    assert words.kind("520", "Mensaje desconocido") == "unknown_id"
