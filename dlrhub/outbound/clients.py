"""What every provider client offers; `dlrhub.providers.client_for` builds one per account."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dlrhub.outbound.account import AccountConfig
from dlrhub.outbound.transport import Exchange, Transport


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One send: the same text to every recipient, or `texts[i]` to `recipients[i]`.

    `refs[i]` is dlrhub's correlation ref for `recipients[i]`. `options` are the
    provider's own extra parameters (Onurix calls: `voice`, `retries`,
    `leave-voicemail`, `audio-code`; `country-code`), passed as given.
    """

    recipients: tuple[str, ...]
    text: str
    refs: tuple[str, ...]
    sender: str | None = None
    channel: str = "sms"
    texts: tuple[str, ...] | None = None
    notification_urls: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)


class ProviderClient(Protocol):
    account: AccountConfig
    transport: Transport

    async def send(self, message: OutboundMessage) -> list[Exchange]:
        """Send; one exchange per request made (some providers take one recipient each)."""
        ...

    async def status(self, message_ids: Sequence[str], channel: str = "sms") -> Exchange:
        """Ask the status of up to `account.group_size` messages in one request."""
        ...

    async def aclose(self) -> None: ...
