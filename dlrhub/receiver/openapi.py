"""The OpenAPI 3.1 document served at `/openapi.json`, written out by hand.

Kept beside the routes it describes; a test checks that every route of the app
is in it and that nothing in it is missing from the app.
"""

from __future__ import annotations

from typing import Any

from dlrhub import __version__
from dlrhub.analytics.facts import BREAKDOWN, SETTLED
from dlrhub.event import EventType, Status
from dlrhub.providers import PROVIDERS
from dlrhub.providers.base import Authenticator, Route
from dlrhub.store.base import MAX_INTEGER
from dlrhub.store.tracking import STOP_REASONS

ERROR = {"$ref": "#/components/schemas/Error"}
TIME = {"type": "string", "format": "date-time"}
FIGURE_COUNTS = ("messages", *SETTLED, "pending")


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
    document = _document()
    document["paths"]["/v1/messages"]["get"] = search_operation()
    document["paths"]["/v1/overview"] = {"get": overview_operation()}
    document["paths"]["/v1/alerts"] = {"get": alerts_operation()}
    document["paths"]["/v1/analytics/delivery"] = {"get": analytics_operation()}
    return document


def alerts_operation() -> dict[str, Any]:
    """`GET /v1/alerts` (dlrhub/receiver/alerts_api.py): open alerts first, then the history."""
    time_or_null = {"type": ["string", "null"], "format": "date-time"}
    number_or_null = {"type": ["number", "null"]}
    alert = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "rule": {"type": "string"},
            "kind": {"type": "string"},
            "group": {"type": "string"},
            "state": {"enum": ["open", "resolved"]},
            "opened_at": TIME,
            "resolved_at": time_or_null,
            "value": number_or_null,
            "last_value": number_or_null,
            "threshold": number_or_null,
            "message": {"type": "string"},
            "resolve_message": {"type": ["string", "null"]},
        },
        "required": ["id", "rule", "kind", "group", "state", "opened_at", "message"],
    }
    return {
        "summary": "Alerts: open ones first (newest first), then resolved ones",
        "tags": ["alerts"],
        "security": ADMIN,
        "parameters": [
            _query("state", "Only open or only resolved alerts.", {"enum": ["open", "resolved"]}),
            _query("limit", "At most this many (1-1000, default 100).", _integer(1, 1000)),
        ],
        "responses": {
            "200": _answer(
                "One entry per episode: a rule's group from opening to resolution.",
                {
                    "type": "object",
                    "properties": {"alerts": {"type": "array", "items": alert}},
                    "required": ["alerts"],
                },
            ),
            **ADMIN_ANSWERS,
        },
    }


def analytics_operation() -> dict[str, Any]:
    """`GET /v1/analytics/delivery` (dlrhub/receiver/analytics_api.py, docs/analytics.md)."""
    nullable_number = {"type": ["number", "null"]}
    figures = {
        "type": "object",
        "description": "The measures of a group (docs/analytics.md); times in seconds.",
        "properties": {
            **{name: {"type": "integer"} for name in FIGURE_COUNTS},
            "delivery_rate": nullable_number,
            "delivery_rate_of_submitted": nullable_number,
            "time_to_receipt": {
                "type": "object",
                "additionalProperties": nullable_number,
            },
            "failure_reasons": {"type": "array", "items": {"type": "object"}},
            "engagement": {"type": "object", "additionalProperties": {"type": "integer"}},
            "previous": {"type": "object", "description": "With compare=previous."},
            "delta": {"type": "object", "description": "With compare=previous."},
        },
        "required": [*FIGURE_COUNTS, "delivery_rate", "time_to_receipt", "failure_reasons"],
    }
    group = {
        "type": "object",
        "description": "A group: its period (null without bucket), its breakdown values"
        ' ("" is unknown) and its figures.',
        "properties": {"period": {"type": ["string", "null"], "format": "date-time"}},
        "required": ["period", *FIGURE_COUNTS],
    }
    report = {
        "type": "object",
        "properties": {
            "from": TIME,
            "to": TIME,
            "group_by": {"type": "array", "items": {"enum": list(BREAKDOWN)}},
            "bucket": {"enum": ["hour", "day", None]},
            "filters": {"type": "object"},
            "groups": {"type": "array", "items": group},
            "total": figures,
            "previous": {"type": "object", "description": "With compare=previous: its range."},
        },
        "required": ["from", "to", "group_by", "bucket", "groups", "total"],
    }
    time_text = "RFC 3339 time (2026-11-20T00:00:00Z) or an offset from now (-24h, -7d, -90m)."
    return {
        "summary": "Delivery figures per provider, source, sender, channel, country, operator",
        "description": (
            "Messages submitted in the range (whole UTC hours), grouped by `group_by` and"
            " per `bucket`: counts by final status, delivery rates, time to receipt,"
            " failure reasons, engagement. Read from the rollups (docs/analytics.md)."
        ),
        "tags": ["query"],
        "security": ADMIN,
        "parameters": [
            _query("from", f"Start, {time_text} Default: 24 hours before `to`."),
            _query("to", f"End, {time_text} Default: now."),
            _query("group_by", f"Comma list of {', '.join(BREAKDOWN)}."),
            _query("bucket", "A row per hour or per UTC day.", {"enum": ["hour", "day"]}),
            _query("format", "json (default) or csv.", {"enum": ["json", "csv"]}),
            _query("compare", "Add the previous period's figures.", {"enum": ["previous"]}),
            *(
                _query(name, f"Only these {name} values (comma list; empty: unknown).")
                for name in BREAKDOWN
            ),
        ],
        "responses": {
            "200": {
                "description": "The figures; with format=csv, one row per group.",
                "content": {
                    "application/json": {"schema": report},
                    "text/csv": {"schema": {"type": "string"}},
                },
            },
            "400": _answer("A parameter is wrong or unknown: the detail says which."),
            "401": ADMIN_ANSWERS["401"],
            "503": ADMIN_ANSWERS["503"],
        },
    }


def overview_operation() -> dict[str, Any]:
    """`GET /v1/overview` (dlrhub/console/overview.py): the console's first page, as JSON."""
    return {
        "summary": "Callbacks per minute, quarantine, open alerts, sinks, poller, store health",
        "tags": ["console"],
        "security": ADMIN,
        "responses": {
            "200": _answer(
                "The figures the console's overview shows (callbacks over the last hour).",
                {
                    "type": "object",
                    "properties": {
                        "generated_at": {"type": "string", "format": "date-time"},
                        "callbacks": {"type": "object"},
                        "quarantine_pending": {"type": "integer"},
                        "alerts_open": {"type": "integer"},
                        "sinks": {"type": "array", "items": {"type": "object"}},
                        "poller": {"type": "array", "items": {"type": "object"}},
                        "store": {"type": "object"},
                    },
                    "required": ["callbacks", "quarantine_pending", "sinks", "poller", "store"],
                },
            ),
            "401": ADMIN_ANSWERS["401"],
            "503": ADMIN_ANSWERS["503"],
        },
    }


def search_operation() -> dict[str, Any]:
    """`GET /v1/messages` (dlrhub/receiver/search_api.py); POST on the same path sends."""
    return {
        "summary": "Find messages, newest first, paged by cursor",
        "tags": ["query"],
        "security": ADMIN,
        "parameters": [
            _query("message_id", "Provider message id (exact)."),
            _query("correlation_id", "Your ref (exact)."),
            _query(
                "recipient",
                "Recipient number: its digits end the stored number's (4 digits at least),"
                " or with a leading + the full number.",
            ),
            _query("provider", f"Provider code name ({', '.join(PROVIDERS)})."),
            _query("source", "Source or outbound account name."),
            _query("status", "Current common status.", {"enum": [s.value for s in Status]}),
            _query(
                "since",
                "Last event received at or after (ISO 8601; UTC if no zone).",
                {"type": "string", "format": "date-time"},
            ),
            _query(
                "until",
                "Last event received before (ISO 8601; UTC if no zone).",
                {"type": "string", "format": "date-time"},
            ),
            _query("before_seq", "Cursor: next_before_seq of the page before.", _integer(1)),
            _query("limit", "At most this many (1-500, default 50).", _integer(1, 500)),
        ],
        "responses": {
            "200": _answer(
                "A page of messages; next_before_seq is null on the last page.",
                {
                    "type": "object",
                    "properties": {
                        "messages": {"type": "array", "items": {"type": "object"}},
                        "next_before_seq": {"type": ["integer", "null"]},
                    },
                    "required": ["messages", "next_before_seq"],
                },
            ),
            **ADMIN_ANSWERS,
        },
    }


def _document() -> dict[str, Any]:
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
                    "description": (
                        "Filters combine with AND. `order=desc` reads newest first: follow"
                        " older pages with `before_seq=next_before_seq`, and new events"
                        " with `after_seq=next_after_seq` (ascending)."
                    ),
                    "tags": ["query"],
                    "security": ADMIN,
                    "parameters": [
                        _query("source", "Source name."),
                        _query("provider", f"Provider code name ({', '.join(PROVIDERS)})."),
                        _query("message_id", "Provider message id."),
                        _query("type", "Event type.", {"enum": [t.value for t in EventType]}),
                        _query("status", "Common status.", {"enum": [s.value for s in Status]}),
                        _query("correlation_id", "Your reference for the message (ref)."),
                        _query("recipient", "Recipient, as the provider wrote it."),
                        _query("since", "Received at or after (ISO 8601; UTC if no offset).", TIME),
                        _query("until", "Received before (ISO 8601; UTC if no offset).", TIME),
                        _query("after_seq", "Cursor: seq of the last event seen.", _integer(0)),
                        _query("before_seq", "Only events before this seq (0: none).", _integer(0)),
                        _query("order", "asc (default) or desc.", {"enum": ["asc", "desc"]}),
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
                    "description": (
                        "`events` in log order, each with `raw_id`: the key in `raw` of the"
                        " callback or provider answer it came from, as stored (redacted)."
                    ),
                    "tags": ["query"],
                    "security": ADMIN,
                    "parameters": [_path("provider"), _path("message_id")],
                    "responses": {
                        "200": _answer(
                            "State, history, each event's stored callback, and every sink"
                            " delivery attempt of its events.",
                            {"$ref": "#/components/schemas/MessageStory"},
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
            **quarantine_bulk_paths(),
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
            **sink_paths(),
            **poller_paths(),
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
            "/docs": {
                "get": {
                    "summary": "This document as a browsable reference (Swagger UI, offline)",
                    "tags": ["operations"],
                    "responses": {
                        "200": {"description": "An HTML page.", "content": {"text/html": {}}}
                    },
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
                "EventPage": {
                    "type": "object",
                    "properties": {
                        "events": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Event"},
                        },
                        "next_after_seq": {"type": "integer"},
                        "next_before_seq": {
                            "type": "integer",
                            "description": "With order=desc: the cursor for older events.",
                        },
                    },
                },
                "StoredCallback": {
                    "type": "object",
                    "description": "A received callback or a provider exchange, as stored.",
                    "properties": {
                        "id": {"type": "integer"},
                        "origin": {"enum": ["callback", "provider_answer"]},
                        "source": {"type": "string"},
                        "provider": {"type": "string"},
                        "kind": {"type": "string"},
                        "method": {"type": "string"},
                        "path": nullable_text,
                        "query": {"type": "string"},
                        "content_type": {"type": "string"},
                        "body": {"type": "string"},
                        "remote_addr": nullable_text,
                        "received_at": {"type": "string", "format": "date-time"},
                    },
                },
                "MessageStory": {
                    "type": "object",
                    "properties": {
                        "message": {"type": ["object", "null"]},
                        "events": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Event"},
                        },
                        "raw": {
                            "type": "object",
                            "additionalProperties": {"$ref": "#/components/schemas/StoredCallback"},
                        },
                        "deliveries": {
                            "type": "array",
                            "description": "Ordered by time; pruned with the events.",
                            "items": {"$ref": "#/components/schemas/DeliveryAttempt"},
                        },
                    },
                    "required": ["message", "events", "raw", "deliveries"],
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
            "get": tracking_list(),
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
            },
        },
    }


def quarantine_bulk_paths() -> dict[str, Any]:
    """`POST /v1/quarantine/reprocess` and `/drop` (dlrhub.receiver.quarantine_bulk)."""
    ids = {
        "type": "object",
        "properties": {
            "ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": {
                    "oneOf": [
                        _integer(0),
                        {"type": "string", "pattern": "^[0-9]{1,19}$"},
                    ]
                },
            }
        },
        "required": ["ids"],
        "additionalProperties": False,
    }
    body = {"required": True, "content": {"application/json": {"schema": ids}}}
    answers = {
        "400": _answer('The body is not {"ids": [1 to 1000 entry ids]}.'),
        "401": _answer("Missing or wrong token."),
        "403": _answer("A viewer token, or a console change without its CSRF token."),
        "503": _answer("Store unavailable."),
    }

    def results(statuses: list[str]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "integer"},
                            "status": {"enum": statuses},
                            "event_ids": {"type": "array", "items": {"type": "string"}},
                        },
                        "required": ["id", "status"],
                    },
                },
                "detail": {"type": "string"},
            },
            "required": ["results", "detail"],
        }

    return {
        "/v1/quarantine/reprocess": {
            "post": {
                "summary": "Normalize quarantined callbacks again (each id's outcome)",
                "tags": ["quarantine"],
                "security": ADMIN,
                "requestBody": body,
                "responses": {
                    "200": _answer(
                        "Per id: reprocessed, failed_again or not_found.",
                        results(["reprocessed", "failed_again", "not_found"]),
                    ),
                    **answers,
                },
            }
        },
        "/v1/quarantine/drop": {
            "post": {
                "summary": "Forget quarantine entries in one commit (each id's outcome)",
                "tags": ["quarantine"],
                "security": ADMIN,
                "requestBody": body,
                "responses": {
                    "200": _answer(
                        "Per id: dropped or not_found.", results(["dropped", "not_found"])
                    ),
                    **answers,
                },
            }
        },
    }


def tracking_list() -> dict[str, Any]:
    """`GET /v1/tracking` (dlrhub.receiver.tracking_api)."""
    return {
        "summary": "Tracked messages, paged by id",
        "tags": ["poller"],
        "security": ADMIN,
        "parameters": [
            _query("account", "Account name."),
            _query(
                "state",
                "active (still polled or waiting) or stopped.",
                {"enum": ["active", "stopped"]},
            ),
            _query("stopped_reason", "Why polling stopped.", {"enum": list(STOP_REASONS)}),
            _query("status", "Common status.", {"enum": [s.value for s in Status]}),
            _query("after_id", "Cursor: id of the last row seen.", _integer(0)),
            _query("limit", "At most this many (1-1000).", _integer(1, 1000)),
        ],
        "responses": {
            "200": _answer(
                "A page of tracked messages and the cursor of the next.",
                {
                    "type": "object",
                    "properties": {
                        "messages": {"type": "array", "items": {"type": "object"}},
                        "next_after_id": {"type": "integer"},
                    },
                    "required": ["messages", "next_after_id"],
                },
            ),
            **ADMIN_ANSWERS,
        },
    }


def poller_paths() -> dict[str, Any]:
    """`GET /v1/poller/accounts`, `POST .../{name}/resume` (dlrhub.receiver.tracking_api)."""
    return {
        "/v1/poller/accounts": {
            "get": {
                "summary": "Pollable accounts: rate, tracked, due, in flight, pause, bad answers",
                "tags": ["poller"],
                "security": ADMIN,
                "responses": {
                    "200": _answer(
                        "One entry per account with poll = true at a pollable provider.",
                        {
                            "type": "object",
                            "properties": {
                                "accounts": {"type": "array", "items": {"type": "object"}}
                            },
                            "required": ["accounts"],
                        },
                    ),
                    **ADMIN_ANSWERS,
                },
            }
        },
        "/v1/poller/accounts/{name}/resume": {
            "post": {
                "summary": "End an account's pause after an authentication error",
                "tags": ["poller"],
                "security": ADMIN,
                "parameters": [_path("name")],
                "responses": {
                    "200": _answer(
                        "Whether it was paused (was_paused).",
                        {
                            "type": "object",
                            "properties": {
                                "account": {"type": "string"},
                                "was_paused": {"type": "boolean"},
                                "detail": {"type": "string"},
                            },
                            "required": ["account", "was_paused", "detail"],
                        },
                    ),
                    "404": _answer("No account of that name."),
                    "403": _answer("A viewer token, or a console change without its CSRF token."),
                    **ADMIN_ANSWERS,
                },
            }
        },
    }


def sink_paths() -> dict[str, Any]:
    """`/v1/sinks...` (dlrhub.console.sinks): what `dlrhub sinks|replay|dlq` do, over HTTP."""
    name = _path("name")
    time_schema = {"type": ["string", "null"], "format": "date-time"}
    nullable_text = {"type": ["string", "null"]}
    sink = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "kind": {"type": "string"},
            "state": {
                "enum": ["ok", "idle", "failing", "paused", "disabled", "new", "unconfigured"]
            },
            "after_seq": {"type": "integer"},
            "lag_events": {"type": "integer"},
            "lag_seconds": {"type": "number"},
            "delivered": {"type": "integer"},
            "throughput": {
                "type": ["number", "null"],
                "description": "Events delivered per minute over the last 5 minutes, from this"
                " process's reads of the delivered count (null until two reads 5 s apart).",
            },
            "dead_letters": {"type": "integer"},
            "last_error": nullable_text,
            "last_error_at": time_schema,
            "last_delivered_at": time_schema,
            "disabled_reason": nullable_text,
            "replays_pending": {"type": "integer"},
            "lease_owner": nullable_text,
        },
        "required": ["name", "kind", "state", "lag_events", "delivered", "dead_letters"],
    }
    changed = {
        "type": "object",
        "properties": {"sink": sink, "detail": {"type": "string"}},
        "required": ["sink", "detail"],
    }
    unknown = {"404": _answer("No sink of that name is configured.")}
    whole = _integer(0)
    no_body = {
        "required": False,
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": False, "maxProperties": 0}
            }
        },
    }
    which = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "properties": {
                                "ids": {
                                    "type": "array",
                                    "items": whole,
                                    "minItems": 1,
                                    "maxItems": 10_000,
                                }
                            },
                            "required": ["ids"],
                            "additionalProperties": False,
                        },
                        {
                            "type": "object",
                            "properties": {"all": {"const": True}},
                            "required": ["all"],
                            "additionalProperties": False,
                        },
                    ]
                }
            }
        },
    }

    def control(summary: str) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "tags": ["sinks"],
                "security": ADMIN,
                "parameters": [name],
                "requestBody": no_body,
                "responses": {
                    "200": _answer("The sink's report now.", changed),
                    **ADMIN_ANSWERS,
                    **unknown,
                },
            }
        }

    def dead_letter_change(summary: str, count: str) -> dict[str, Any]:
        answer = {
            "type": "object",
            "properties": {count: {"type": "integer"}, "detail": {"type": "string"}},
            "required": [count, "detail"],
        }
        return {
            "post": {
                "summary": summary,
                "tags": ["sinks"],
                "security": ADMIN,
                "parameters": [name],
                "requestBody": which,
                "responses": {"200": _answer("How many.", answer), **ADMIN_ANSWERS, **unknown},
            }
        }

    return {
        "/v1/sinks": {
            "get": {
                "summary": "Every sink: state, lag, throughput, dead letters, last error",
                "tags": ["sinks"],
                "security": ADMIN,
                "responses": {
                    "200": _answer(
                        "The sinks (configured ones, then state left by earlier ones).",
                        {
                            "type": "object",
                            "properties": {"sinks": {"type": "array", "items": sink}},
                            "required": ["sinks"],
                        },
                    ),
                    **ADMIN_ANSWERS,
                },
            }
        },
        "/v1/sinks/{name}": {
            "get": {
                "summary": "One sink's report",
                "tags": ["sinks"],
                "security": ADMIN,
                "parameters": [name],
                "responses": {
                    "200": _answer("The report.", sink),
                    **ADMIN_ANSWERS,
                    "404": _answer("No sink of that name, configured or with state."),
                },
            }
        },
        "/v1/sinks/{name}/pause": control("Stop delivering to a sink (at once, durably)"),
        "/v1/sinks/{name}/resume": control(
            "Deliver to a sink again; also re-enables one its endpoint disabled"
        ),
        "/v1/sinks/{name}/replay": {
            "post": {
                "summary": "Re-deliver stored events to a sink, or preview how many (dry_run)",
                "tags": ["sinks"],
                "security": ADMIN,
                "parameters": [name],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "description": "Exactly one of since_seq (events after that"
                                " seq) or since (events received from that time; without an"
                                " offset: UTC).",
                                "properties": {
                                    "since_seq": whole,
                                    "since": {"type": "string", "format": "date-time"},
                                    "until_seq": whole,
                                    "dry_run": {"type": "boolean"},
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "200": _answer(
                        "The preview (dry_run): events in the range, or nothing to replay.",
                        {
                            "type": "object",
                            "properties": {
                                "events": {"type": "integer"},
                                "after_seq": {"type": "integer"},
                                "until_seq": {"type": "integer"},
                                "job": {"type": "null"},
                                "detail": {"type": "string"},
                            },
                            "required": ["detail"],
                        },
                    ),
                    "202": _answer(
                        "Queued; the running serve or worker sends it.",
                        {
                            "type": "object",
                            "properties": {
                                "job": {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "integer"},
                                        "after_seq": {"type": "integer"},
                                        "until_seq": {"type": "integer"},
                                    },
                                },
                                "detail": {"type": "string"},
                            },
                            "required": ["job", "detail"],
                        },
                    ),
                    **ADMIN_ANSWERS,
                    **unknown,
                },
            }
        },
        "/v1/sinks/{name}/dead-letters": {
            "get": {
                "summary": "A sink's dead letters, with their last error",
                "tags": ["sinks"],
                "security": ADMIN,
                "parameters": [
                    name,
                    _query(
                        "state",
                        "dead, or retry (queued for redelivery).",
                        {"enum": ["dead", "retry"]},
                    ),
                    _query("after_id", "Cursor: id of the last dead letter seen.", whole),
                    _query("limit", "At most this many (1-1000).", _integer(1, 1000)),
                ],
                "responses": {
                    "200": _answer(
                        "A page of dead letters.",
                        {
                            "type": "object",
                            "properties": {
                                "dead_letters": {"type": "array", "items": {"type": "object"}},
                                "next_after_id": {"type": "integer"},
                            },
                            "required": ["dead_letters", "next_after_id"],
                        },
                    ),
                    **ADMIN_ANSWERS,
                    **unknown,
                },
            }
        },
        "/v1/sinks/{name}/dead-letters/retry": dead_letter_change(
            "Queue dead letters for redelivery: these ids, or all", "retried"
        ),
        "/v1/sinks/{name}/dead-letters/drop": dead_letter_change(
            "Delete dead letters: these ids, or all", "dropped"
        ),
    }
