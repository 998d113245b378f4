"""The OpenAPI 3.1 document served at `/openapi.json`, written out by hand.

Kept beside the routes it describes; a test checks that every route of the app
is in it and that nothing in it is missing from the app.
"""

from __future__ import annotations

from typing import Any

from dlrhub import __version__
from dlrhub.event import EventType, Status
from dlrhub.providers import PROVIDERS
from dlrhub.providers.base import Authenticator, Route
from dlrhub.store.base import MAX_INTEGER

ERROR = {"$ref": "#/components/schemas/Error"}


def _integer(low: int, high: int = MAX_INTEGER) -> dict[str, Any]:
    """An integer parameter: anything else, or out of these bounds, is answered 400."""
    return {"type": "integer", "format": "int64", "minimum": low, "maximum": high}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {"application/json": {"schema": schema or ERROR}}
    return {"description": description, "content": content}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


HOOK_ANSWERS = {
    "200": _answer(
        "Durably stored, a duplicate of a stored callback, or quarantined (unreadable,"
        " or a receipt that names no message: reason no_message_identity).",
        {"$ref": "#/components/schemas/HookAnswer"},
    ),
    "403": _answer("The caller's address is not in the source's allow_ips."),
    "404": _answer("No source of that name."),
    "413": _answer("Body over server.max_body_bytes."),
    "503": _answer("Store unavailable; retry after the Retry-After seconds."),
}
ADMIN_ANSWERS = {
    "400": _answer(
        "A query or path parameter is wrong: unknown, not one of its values, or an"
        f" integer that is not plain digits within its bounds (at most {MAX_INTEGER})."
    ),
    "401": _answer("Missing or wrong admin bearer token."),
    "503": _answer("Store unavailable."),
}
ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]


def _hook(
    summary: str,
    body: dict[str, Any] | None,
    extra_params: list[Any],
    route: Route,
    auth: Authenticator,
) -> dict[str, Any]:
    responses = dict(HOOK_ANSWERS)
    if route.ack is not None:
        text = {"schema": {"type": "string", "enum": [route.ack.decode()]}}
        responses["200"] = {
            "description": "Stored, a duplicate, or quarantined: the body the provider needs.",
            "content": {"text/plain": text},
        }
    if auth.challenge is not None:
        responses["401"] = _answer(auth.failure)
    else:
        responses["403"] = _answer(f"{auth.failure} Or the address is not in allow_ips.")
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": ["provider callbacks"],
        "security": [{name: []} for name in auth.security],
        "parameters": [_path("source"), *extra_params],
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": body}
        operation["responses"]["415"] = _answer("Wrong Content-Type.")
        if route.lenient_content_type:
            operation["requestBody"]["description"] = (
                f"{route.content_type}, or any other Content-Type (or none) when the body"
                " parses as JSON: the provider's document never states one."
            )
            operation["responses"]["415"] = _answer(
                f"A Content-Type other than {route.content_type} with a body that is not JSON."
            )
    return operation


def _route_operation(
    route: Route, auth: Authenticator, summary: str, method: str
) -> dict[str, Any]:
    properties = {name: {"type": "string"} for name in route.fields}
    if method == "GET" or route.content_type is None:
        params = [
            _query(name, "A receipt parameter (names are configurable).") for name in route.fields
        ]
        return _hook(summary, None, params, route, auth)
    schema: dict[str, Any] = {"type": "object"}
    if properties:
        schema["properties"] = properties
    content = {route.content_type: {"schema": schema}}
    if route.lenient_content_type:
        content["*/*"] = {"schema": {}}  # any JSON text (what it holds, the normalizer reads)
    return _hook(summary, content, [], route, auth)


def hook_paths() -> dict[str, Any]:
    """`/hooks/{source}/{kind}` for every route of every provider; routes of the same
    kind from several providers share a path, their summaries joined."""
    paths: dict[str, Any] = {}
    for provider in PROVIDERS.values():
        if provider.source is None:
            continue
        for route in provider.source.routes:
            path = paths.setdefault(f"/hooks/{{source}}/{route.kind}", {})
            for method in route.methods:
                summary = route.summary or f"{provider.title} {route.kind} callback"
                operation = _route_operation(route, provider.source.auth, summary, method)
                if method.lower() in path:
                    _merge(path[method.lower()], operation)
                else:
                    path[method.lower()] = operation
    return paths


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    """One operation for a path two providers serve: either provider's request is valid."""
    into["summary"] += f"; {other['summary']}"
    into["security"] += [scheme for scheme in other["security"] if scheme not in into["security"]]
    for status, answer in other["responses"].items():
        known = into["responses"].setdefault(status, answer)
        if known is answer:
            continue
        if answer["description"] not in known["description"]:
            known["description"] += f" {answer['description']}"
        known.setdefault("content", {}).update(answer.get("content", {}))
    if "requestBody" in other:
        body = into.setdefault("requestBody", {"required": True, "content": {}})
        body["content"].update(other["requestBody"]["content"])


def openapi_document() -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dlrhub",
            "version": __version__,
            "description": "Receives provider callbacks, stores them durably, answers queries.",
        },
        "paths": {
            **hook_paths(),
            "/v1/events": {
                "get": {
                    "summary": "Events in store order, paged by seq",
                    "tags": ["query"],
                    "security": ADMIN,
                    "parameters": [
                        _query("source", "Source name."),
                        _query("provider", f"Provider code name ({', '.join(PROVIDERS)})."),
                        _query("message_id", "Provider message id."),
                        _query("type", "Event type.", {"enum": [t.value for t in EventType]}),
                        _query("status", "Common status.", {"enum": [s.value for s in Status]}),
                        _query("after_seq", "Cursor: seq of the last event seen.", _integer(0)),
                        _query("limit", "At most this many (1-1000).", _integer(1, 1000)),
                    ],
                    "responses": {
                        "200": _answer(
                            "A page of events.", {"$ref": "#/components/schemas/EventPage"}
                        ),
                        **ADMIN_ANSWERS,
                    },
                }
            },
            "/v1/messages/{provider}/{message_id}": {
                "get": {
                    "summary": "Current state and history of one message",
                    "tags": ["query"],
                    "security": ADMIN,
                    "parameters": [_path("provider"), _path("message_id")],
                    "responses": {
                        "200": _answer(
                            "State, history, and every sink delivery attempt of its events.",
                            {"$ref": "#/components/schemas/MessageAnswer"},
                        ),
                        "404": _answer("No such message."),
                        **ADMIN_ANSWERS,
                    },
                }
            },
            "/v1/quarantine": {
                "get": {
                    "summary": "Quarantined callbacks",
                    "tags": ["quarantine"],
                    "security": ADMIN,
                    "parameters": [
                        _query(
                            "state", "pending or reprocessed.", {"enum": ["pending", "reprocessed"]}
                        ),
                        _query("after_id", "Cursor.", _integer(0)),
                        _query("limit", "At most this many (1-1000).", _integer(1, 1000)),
                    ],
                    "responses": {"200": _answer("Entries.", {"type": "object"}), **ADMIN_ANSWERS},
                }
            },
            "/v1/quarantine/{entry_id}": {
                "get": {
                    "summary": "One quarantined callback, with its redacted raw payload",
                    "tags": ["quarantine"],
                    "security": ADMIN,
                    "parameters": [_path("entry_id", _integer(0))],
                    "responses": {
                        "200": _answer("The entry.", {"type": "object"}),
                        "404": _answer("No such entry."),
                        **ADMIN_ANSWERS,
                    },
                },
                "delete": {
                    "summary": "Forget a quarantine entry; the received callback stays",
                    "tags": ["quarantine"],
                    "security": ADMIN,
                    "parameters": [_path("entry_id", _integer(0))],
                    "responses": {
                        "204": {"description": "Dropped; its id is never given out again."},
                        "404": _answer("No such entry."),
                        **ADMIN_ANSWERS,
                    },
                },
            },
            "/v1/quarantine/{entry_id}/reprocess": {
                "post": {
                    "summary": "Normalize a quarantined callback again and store its events",
                    "tags": ["quarantine"],
                    "security": ADMIN,
                    "parameters": [_path("entry_id", _integer(0))],
                    "responses": {
                        "200": _answer("What happened.", {"type": "object"}),
                        "404": _answer("No such entry."),
                        **ADMIN_ANSWERS,
                    },
                }
            },
            **outbound_paths(),
            "/healthz": {
                "get": {
                    "summary": "The process answers",
                    "tags": ["operations"],
                    "responses": {"200": {"description": "Alive."}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "The store takes writes",
                    "tags": ["operations"],
                    "responses": {
                        "200": {"description": "Ready."},
                        "503": _answer("Store unavailable."),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "tags": ["operations"],
                    "responses": {
                        "200": {
                            "description": "Prometheus text format.",
                            "content": {"text/plain": {}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "tags": ["operations"],
                    "responses": {"200": {"description": "OpenAPI 3.1."}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                **{
                    name: scheme
                    for provider in PROVIDERS.values()
                    if provider.source is not None
                    for name, scheme in provider.source.auth.security.items()
                },
                "adminToken": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                    "required": ["error", "detail"],
                },
                "HookAnswer": {
                    "type": "object",
                    "properties": {
                        "status": {"enum": ["stored", "duplicate", "quarantined"]},
                        "duplicate": {"type": "boolean"},
                        "event_ids": {"type": "array", "items": {"type": "string"}},
                        "quarantine_id": {"type": "integer"},
                    },
                    "required": ["status", "duplicate", "event_ids"],
                },
                "Event": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "description": "UUIDv7, sortable"},
                        "seq": {"type": "integer"},
                        "source": {"type": "string"},
                        "provider": {"type": "string"},
                        "channel": nullable_text,
                        "type": {"enum": [t.value for t in EventType]},
                        "message_id": nullable_text,
                        "correlation_id": nullable_text,
                        "recipient": nullable_text,
                        "sender": nullable_text,
                        "status": {"enum": [*(s.value for s in Status), None]},
                        "provider_status": nullable_text,
                        "occurred_at": {"type": ["string", "null"], "format": "date-time"},
                        "received_at": {"type": "string", "format": "date-time"},
                        "extra": {"type": "object"},
                    },
                },
                "DeliveryAttempt": {
                    "type": "object",
                    "description": "One attempt of a sink at delivering one event.",
                    "properties": {
                        "sink": {"type": "string"},
                        "seq": {"type": "integer"},
                        "event_id": {"type": "string"},
                        "attempt": {"type": "integer", "minimum": 1},
                        "at": {"type": "string", "format": "date-time"},
                        "outcome": {"enum": ["delivered", "retrying", "given_up", "unavailable"]},
                        "duration_ms": {"type": ["number", "null"]},
                        "answer": {
                            "type": ["string", "null"],
                            "description": "The sink's error, redacted, at most 500"
                            " characters; null when delivered.",
                        },
                    },
                    "required": [
                        "sink",
                        "seq",
                        "event_id",
                        "attempt",
                        "at",
                        "outcome",
                        "duration_ms",
                        "answer",
                    ],
                },
                "MessageAnswer": {
                    "type": "object",
                    "properties": {
                        "message": {"type": ["object", "null"]},
                        "events": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Event"},
                        },
                        "deliveries": {
                            "type": "array",
                            "description": "Ordered by time; pruned with the events.",
                            "items": {"$ref": "#/components/schemas/DeliveryAttempt"},
                        },
                    },
                    "required": ["message", "events", "deliveries"],
                },
                "EventPage": {
                    "type": "object",
                    "properties": {
                        "events": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Event"},
                        },
                        "next_after_seq": {"type": "integer"},
                    },
                },
            },
        },
    }


def outbound_paths() -> dict[str, Any]:
    """`POST /v1/messages` and `POST /v1/tracking` (dlrhub.receiver.outbound_api)."""
    text_list = {"type": "array", "items": {"type": "string"}}
    time_schema = {"type": "string", "format": "date-time"}
    provider_errors = {
        "404": _answer("No account of that name."),
        "502": _answer(
            "The provider refused (error provider_auth_failed, provider_rejected,"
            " provider_bad_answer; provider_code holds its own code)."
        ),
    }
    return {
        "/v1/messages": {
            "post": {
                "summary": "Send through a configured provider account, and track the messages",
                "tags": ["outbound"],
                "security": ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "account": {"type": "string"},
                                    "to": {"oneOf": [{"type": "string"}, text_list]},
                                    "text": {"type": "string"},
                                    "from": {"type": "string"},
                                    "refs": text_list,
                                    "texts": text_list,
                                    "channel": {"enum": ["sms", "call"]},
                                    "options": {"type": "object"},
                                },
                                "required": ["account", "to"],
                            }
                        }
                    },
                },
                "responses": {
                    "200": _answer(
                        "One entry per recipient: accepted, queued or rejected.",
                        {"type": "object"},
                    ),
                    **ADMIN_ANSWERS,
                    **provider_errors,
                    "503": _answer("Provider or store unavailable."),
                },
            }
        },
        "/v1/tracking": {
            "post": {
                "summary": "Register messages sent elsewhere, to be polled",
                "tags": ["outbound"],
                "security": ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "account": {"type": "string"},
                                    "messages": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "message_id": {"type": "string"},
                                                "recipient": {"type": "string"},
                                                "ref": {"type": "string"},
                                                "channel": {"type": "string"},
                                                "sent_at": time_schema,
                                                "sending_id": {"type": "string"},
                                            },
                                            "required": ["message_id"],
                                        },
                                    },
                                },
                                "required": ["account", "messages"],
                            }
                        }
                    },
                },
                "responses": {
                    "200": _answer("How many are new.", {"type": "object"}),
                    **ADMIN_ANSWERS,
                    "404": _answer("No account of that name."),
                },
            }
        },
    }
