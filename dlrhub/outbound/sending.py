"""Sending through a configured account, and registering messages sent elsewhere.

A send calls the provider, stores the exchange (redacted request, answer) with
the `accepted` / `rejected` events the provider's normalizer reads from it, and
records one tracking row per recipient: polled from `first_interval` on when
the provider has a status API and the account polls, otherwise stopped at once
(`rejected`, `not_pollable`). Each recipient has a ref (given, or generated),
kept as the events' `correlation_id`. For 360NRS, when the account names a
hook `source`, each recipient's `notificationUrl` is dlrhub's own `dlr` route
with the source token and the ref, so receipts come back here.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dlrhub.event import Event, EventType, Status
from dlrhub.normalizers import NormalizeError
from dlrhub.outbound.clients import OutboundMessage, ProviderClient
from dlrhub.outbound.errors import ProviderAnswerError
from dlrhub.outbound.poller import Clock, utc_now
from dlrhub.outbound.settings import AccountConfig, OutboundSettings
from dlrhub.providers import PROVIDERS, client_for
from dlrhub.store import Accept, Quarantine, Store
from dlrhub.store.tracking import NewTracking, TrackedMessage, TrackingStore

REF = re.compile(r"^[A-Za-z0-9._~:-]{1,64}$")
MAX_RECIPIENTS = 10_000
MAX_TEXT = 5_000


# What a send may ask of each provider: its `AccountSpec` in the registry says.
def _sends_distinct_texts(provider: str) -> bool:
    """Whether the provider can send each recipient its own text (`texts`)."""
    spec = PROVIDERS[provider].account
    return spec is not None and spec.distinct_texts


def _channels(provider: str) -> frozenset[str]:
    """The channels a send through this provider may use."""
    spec = PROVIDERS[provider].account
    return spec.channels if spec is not None else frozenset({"sms"})


class SendRefused(ValueError):
    """The request to dlrhub is wrong (unknown account, bad ref, no recipients)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class SentMessage:
    recipient: str | None
    ref: str | None
    message_id: str | None
    status: Status | None
    provider_status: str | None
    event_id: str
    error_code: str | None = None
    error_message: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "recipient": self.recipient,
            "ref": self.ref,
            "message_id": self.message_id,
            "status": self.status.value if self.status else None,
            "provider_status": self.provider_status,
            "event_id": self.event_id,
            "error_code": self.error_code,
            "error_message": self.error_message,
        }


@dataclass(frozen=True, slots=True)
class TrackRequest:
    message_id: str
    recipient: str | None = None
    ref: str | None = None
    channel: str = "sms"
    sent_at: datetime | None = None
    sending_id: str | None = None


@dataclass
class Outbound:
    """Senders and trackers for every configured account, sharing one client per account."""

    config: OutboundSettings
    store: Store
    tracking: TrackingStore
    now: Clock = utc_now
    clients: dict[str, ProviderClient] = field(default_factory=dict)

    def account(self, name: str) -> AccountConfig:
        account = self.config.outbound.account(name)
        if account is None:
            known = ", ".join(a.name for a in self.config.outbound.accounts) or "none configured"
            raise SendRefused("unknown_account", f"no account named {name!r} ({known})")
        return account

    def client(self, account: AccountConfig) -> ProviderClient:
        if account.name not in self.clients:
            # Sends take their turns from the same budget as the pollers (the store's).
            self.clients[account.name] = client_for(account, budget=self.tracking)
        return self.clients[account.name]

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()

    async def send(
        self,
        account_name: str,
        recipients: Sequence[str],
        text: str,
        *,
        refs: Sequence[str] | None = None,
        sender: str | None = None,
        channel: str = "sms",
        texts: Sequence[str] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> list[SentMessage]:
        """Send and record; raises `SendRefused` or a `ProviderError`."""
        account = self.account(account_name)
        recipients = [recipient.strip() for recipient in recipients]
        refs = list(refs) if refs else [_new_ref() for _ in recipients]
        _check_send(account, recipients, text, refs, channel, texts)
        message = OutboundMessage(
            recipients=tuple(recipients),
            text=text,
            refs=tuple(refs),
            sender=sender,
            channel=channel,
            texts=tuple(texts) if texts else None,
            notification_urls=self._notification_urls(account, refs),
            options=dict(options or {}),
        )
        exchanges = await self.client(account).send(message)
        stored: list[Event] = []
        for exchange in exchanges:
            raw = exchange.raw(account, "send")
            try:
                events = PROVIDERS[account.provider].normalize(raw, account.options)
            except NormalizeError as error:
                await self.store.write(Quarantine(raw, str(error)))
                raise ProviderAnswerError(
                    account.name,
                    account.provider,
                    f"the send answer was quarantined, the messages' fate is unknown: {error}",
                    http_status=exchange.status_code,
                ) from None
            stored += (await self.store.write(Accept(raw, events))).events
        await self.tracking.add([self._tracking_row(account, event) for event in stored])
        return [_sent(event) for event in stored if event.type is EventType.MESSAGE_STATUS]

    async def track(self, account_name: str, items: Sequence[TrackRequest]) -> int:
        """Register messages sent elsewhere; they are polled from now on. Returns new rows."""
        account = self.account(account_name)
        if not account.pollable:
            raise SendRefused(
                "not_pollable",
                f"account {account.name!r} ({account.provider}) cannot be polled"
                + (": the provider has no status API" if account.poll else " (poll = false)"),
            )
        now = self.now()
        rows = []
        for item in items:
            if not item.message_id or len(item.message_id) > 200:
                raise SendRefused("bad_request", "every message needs a message_id (<= 200 chars)")
            if item.ref is not None and not REF.match(item.ref):
                raise SendRefused(
                    "bad_request", f"ref {item.ref[:80]!r} is not 1-64 URL-safe chars"
                )
            rows.append(
                NewTracking(
                    account=account.name,
                    provider=account.provider,
                    message_id=item.message_id,
                    created_at=item.sent_at or now,
                    recipient=item.recipient,
                    correlation_id=item.ref,
                    channel=item.channel,
                    sending_id=item.sending_id,
                    next_poll_at=now,
                )
            )
        return await self.tracking.add(rows)

    async def find(self, account_name: str, message_id: str) -> TrackedMessage | None:
        return await self.tracking.find(account_name, message_id)

    def _tracking_row(self, account: AccountConfig, event: Event) -> NewTracking:
        now = self.now()
        status = event.status
        stopped = None
        if status is Status.REJECTED or (status is not None and status.is_final):
            stopped = "rejected" if status is Status.REJECTED else "final_status"
        elif not account.pollable:
            stopped = "not_pollable"
        first = timedelta(seconds=self.config.outbound.poller.first_interval)
        return NewTracking(
            account=account.name,
            provider=account.provider,
            message_id=event.message_id or event.id,
            created_at=now,
            recipient=event.recipient,
            correlation_id=event.correlation_id,
            channel=event.channel or "sms",
            sending_id=_text(event.extra.get("sending_id") or event.extra.get("dispatch_id")),
            status=status,
            provider_status=event.provider_status,
            next_poll_at=None if stopped else now + first,
            stopped_reason=stopped,
        )

    def _notification_urls(self, account: AccountConfig, refs: Sequence[str]) -> tuple[str, ...]:
        source_name = account.setting("source")
        spec = PROVIDERS[account.provider].account
        notification_url = spec.notification_url if spec is not None else None
        if notification_url is None or not source_name:
            return ()
        source = self.config.source(source_name)
        if source is None:
            raise SendRefused(
                "bad_config",
                f"account {account.name!r} names source {source_name!r}, not configured",
            )
        hook = f"{self.config.server.base_url}/hooks/{source.name}"
        return tuple(notification_url(hook, source.token, source.options, ref) for ref in refs)


@dataclass(frozen=True, slots=True)
class SendRequest:
    """What `_check_send` checks: a send as dlrhub was asked for it."""

    provider: str
    recipients: Sequence[str]
    text: str
    refs: Sequence[str]
    channel: str
    texts: Sequence[str] | None


def _check_send(
    account: AccountConfig,
    recipients: list[str],
    text: str,
    refs: list[str],
    channel: str,
    texts: Sequence[str] | None,
) -> None:
    """Raise `SendRefused` for the first of `SEND_CHECKS` the request fails."""
    request = SendRequest(account.provider, recipients, text, refs, channel, texts)
    for check in SEND_CHECKS:
        check(request)


def _check_recipients_given(request: SendRequest) -> None:
    if not request.recipients or any(not recipient for recipient in request.recipients):
        raise SendRefused("bad_request", "give at least one recipient, none of them blank")


def _check_recipient_count(request: SendRequest) -> None:
    if len(request.recipients) > MAX_RECIPIENTS:
        raise SendRefused("bad_request", f"at most {MAX_RECIPIENTS} recipients per send")


def _check_no_comma_in_recipients(request: SendRequest) -> None:
    if any("," in recipient for recipient in request.recipients):
        raise SendRefused("bad_request", "a recipient may not contain ','")


def _check_one_ref_each(request: SendRequest) -> None:
    refs = request.refs
    if len(refs) != len(request.recipients) or len(set(refs)) != len(refs):
        raise SendRefused("bad_request", "give one distinct ref per recipient, or none")


def _check_refs_url_safe(request: SendRequest) -> None:
    for ref in request.refs:
        if not REF.match(ref):
            raise SendRefused("bad_request", f"ref {ref[:80]!r} is not 1-64 URL-safe characters")


def _check_one_text_each(request: SendRequest) -> None:
    if request.texts is not None and len(request.texts) != len(request.recipients):
        raise SendRefused("bad_request", "give one text per recipient in 'texts', or none")


def _check_distinct_texts_allowed(request: SendRequest) -> None:
    texts = request.texts
    if texts is not None and not _sends_distinct_texts(request.provider) and len(set(texts)) > 1:
        raise SendRefused("bad_request", f"{request.provider} sends one text to everyone")


def _check_text_given(request: SendRequest) -> None:
    if not (request.text or request.texts) and request.channel != "call":
        raise SendRefused("bad_request", "the text is empty")


def _check_text_length(request: SendRequest) -> None:
    if len(request.text) > MAX_TEXT:
        raise SendRefused("bad_request", f"the text is over {MAX_TEXT} characters")


def _check_channel(request: SendRequest) -> None:
    channels = _channels(request.provider)
    if request.channel not in channels:
        offered = " or ".join(repr(name) for name in sorted(channels))
        raise SendRefused("bad_request", f"channel is {offered} through {request.provider}")


# In this order: when several things are wrong, the first check decides what the user reads.
SEND_CHECKS: tuple[Callable[[SendRequest], None], ...] = (
    _check_recipients_given,
    _check_recipient_count,
    _check_no_comma_in_recipients,
    _check_one_ref_each,
    _check_refs_url_safe,
    _check_one_text_each,
    _check_distinct_texts_allowed,
    _check_text_given,
    _check_text_length,
    _check_channel,
)


def _sent(event: Event) -> SentMessage:
    return SentMessage(
        recipient=event.recipient,
        ref=event.correlation_id,
        message_id=event.message_id,
        status=event.status,
        provider_status=event.provider_status,
        event_id=event.id,
        error_code=_text(event.extra.get("error_code")),
        error_message=_text(event.extra.get("error_message")),
    )


def _text(value: object) -> str | None:
    return str(value) if value is not None else None


def _new_ref() -> str:
    return secrets.token_hex(10)
