"""360NRS: pushes event notifications, delivery receipts and progress notifications;
dlrhub sends through it, polls per-message events and backfills from its events report.

Everything 360NRS is in this folder: `callbacks.py` (the three callbacks and their
status tables), `answers.py` (its API answers), `client.py`, `backfill.py`,
`fake.py`; the user's page is docs/providers/nrs360.md.
"""

from __future__ import annotations

from urllib.parse import quote

from dlrhub.normalizers.base import SourceOptions
from dlrhub.providers.base import AccountSpec, Provider, Route, SourceSpec
from dlrhub.providers.nrs360 import answers, callbacks
from dlrhub.providers.nrs360.client import Nrs360Client
from dlrhub.providers.token import SOURCE_TOKEN

ROUTES = (
    Route(
        "events",
        ("POST",),
        body="form",
        summary="360NRS event notification (form-encoded)",
        fields=callbacks.EVENT_FIELDS,
    ),
    Route(
        "dlr",
        ("GET",),
        summary="360NRS delivery receipt on the send's notificationUrl (Kannel-style escapes)",
    ),
    Route(
        "progress",
        ("POST",),
        body="json",
        summary="360NRS JSON progress notification",
        # The document shows the JSON and never its Content-Type (~l.5061).
        lenient_content_type=True,
    ),
)


def _receipt_url(hook: str, token: str, options: SourceOptions, ref: str) -> str:
    """The `notificationUrl` of one send: 360NRS fills in `%d`, `%P` and `%p`."""
    names = {**callbacks.DEFAULT_DLR_PARAMS, **options.dlr_params}
    return (
        f"{hook}/dlr?token={token}"
        f"&{names['status']}=%d&{names['phone']}=%P&{names['sender']}=%p&{names['ref']}={ref}"
    )


def _urls(hook: str, token: str, options: SourceOptions) -> list[tuple[str, str]]:
    return [
        ("event notifications (POST)", f"{hook}/events?token={token}"),
        (
            "delivery receipts (notificationUrl, GET; put your own ref)",
            _receipt_url(hook, token, options, "<your-ref>"),
        ),
        ("progress notifications (POST)", f"{hook}/progress?token={token}"),
    ]


def _notification_url(hook: str, token: str, options: SourceOptions, ref: str) -> str:
    return _receipt_url(hook, token, options, quote(ref, safe=""))


PROVIDER = Provider(
    name="nrs360",
    title="360NRS",
    aliases=("360nrs",),
    normalize=answers.normalize,
    docs="docs/providers/nrs360.md",
    status_table="dlrhub/providers/nrs360/callbacks.py",
    source=SourceSpec(
        routes=ROUTES,
        auth=SOURCE_TOKEN,
        urls=_urls,
        dlr_params=callbacks.DEFAULT_DLR_PARAMS,
        plus_as_space=False,  # phone numbers arrive as +34...: see callbacks.py
    ),
    account=AccountSpec(
        client=Nrs360Client,
        base_url="https://dashboard.360nrs.com/api/rest",
        keys=frozenset({"username", "password", "sender"}),
        required=(("username",), ("password",)),
        secret_keys=frozenset({"password"}),
        pollable=True,
        group_size=50,
        notification_url=_notification_url,
    ),
    fake="dlrhub.providers.nrs360.fake:FakeNrs360",
    backfill="dlrhub.providers.nrs360.backfill:backfill_sending",
)
