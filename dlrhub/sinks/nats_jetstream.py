"""`nats` sink: publish each event to NATS JetStream and wait for the stream's ack (nats-py).

| key             | default                           | meaning                                  |
|-----------------|-----------------------------------|------------------------------------------|
| `servers`       | `["nats://127.0.0.1:4222"]`       | server URLs (`nats://user:pass@host:4222`) |
| `subject`       | `dlrhub.events.{provider}.{type}` | template with `{source}`, `{provider}`,  |
|                 |                                   | `{type}`, `{status}`                     |
| `stream`        | none                              | expected stream (publish fails if the    |
|                 |                                   | subject is captured by another stream)   |
| `create_stream` | false                             | create `stream` if missing (trying out)  |

Every message carries `Nats-Msg-Id` = the event id, so the stream drops a
redelivery that arrives within its duplicate window (2 minutes by default).
A batch is published in store order without waiting between messages, then
all acks are awaited. No connection, a reconnecting client, a missing stream
(no responders) or an ack that does not come in time is an outage; an error
answer from JetStream is a failed attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from dlrhub.event import Event
from dlrhub.settings_schema import Check
from dlrhub.sinks.base import DeliveryFailed, Sink, SinkKind, SinkUnavailable

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

    from dlrhub.sinks.settings import SinkConfig

log = logging.getLogger(__name__)

PLACEHOLDER = re.compile(r"\{(\w+)\}")
FIELDS = frozenset({"source", "provider", "type", "status"})


def _server_problem(url: str) -> str | None:
    if urlsplit(url).scheme in ("nats", "tls", "ws", "wss"):
        return None
    return "must be a nats:// or tls:// URL"


def _subject_problem(template: str) -> str | None:
    if set(PLACEHOLDER.findall(template)) - FIELDS or not template or " " in template:
        return "must be a subject; fields allowed: {source}, {provider}, {type}, {status}"
    return None


@dataclass(frozen=True, slots=True)
class NatsOptions:
    servers: Annotated[
        tuple[Annotated[str, Check(_server_problem)], ...],
        Check(lambda servers: None if servers else "must name at least one server"),
    ] = field(default=("nats://127.0.0.1:4222",), repr=False)
    subject: Annotated[str, Check(_subject_problem)] = "dlrhub.events.{provider}.{type}"
    stream: str | None = None
    create_stream: bool = False  # create `stream` if missing

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.create_stream and not self.stream:
            yield "create_stream", "needs 'stream' (the stream's name)"

    def secrets(self) -> tuple[str, ...]:
        values = []
        for server in self.servers:
            parts = urlsplit(server)
            values += [value for value in (parts.password, parts.username) if value]
        return tuple(values)

    def subject_for(self, event: Event) -> str:
        values = {
            "source": event.source,
            "provider": event.provider,
            "type": event.type.value,
            "status": event.status.value if event.status is not None else "none",
        }
        return PLACEHOLDER.sub(lambda match: values[match.group(1)], self.subject)

    @property
    def subject_filter(self) -> str:
        """The subjects a created stream captures: the template up to its first field, then `>`."""
        match = PLACEHOLDER.search(self.subject)
        return self.subject if match is None else self.subject[: match.start()] + ">"


class NatsSink:
    def __init__(self, config: SinkConfig) -> None:
        options = config.options
        assert isinstance(options, NatsOptions)
        self.options = options
        self.timeout = config.timeout
        self.name = config.name
        self._client: Client | None = None
        self._jetstream: JetStreamContext | None = None
        self._stream_ready = not options.create_stream

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        client, self._client, self._jetstream = self._client, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    async def _connect(self) -> JetStreamContext:
        import nats
        import nats.errors

        if self._jetstream is not None and self._client is not None and not self._client.is_closed:
            return self._jetstream

        async def quiet(*args: Any) -> None:
            # nats-py reports every reconnect attempt; the engine reports the outage.
            log.debug("sink %s: nats: %s", self.name, args)

        try:
            client = await nats.connect(
                servers=list(self.options.servers),
                connect_timeout=max(int(self.timeout), 1),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=quiet,
                disconnected_cb=quiet,
                reconnected_cb=quiet,
                closed_cb=quiet,
            )
        except (nats.errors.Error, OSError, TimeoutError) as error:
            raise SinkUnavailable(f"cannot connect to NATS: {type(error).__name__}") from None
        self._client = client
        self._jetstream = client.jetstream(timeout=self.timeout)
        return self._jetstream

    async def _ensure_stream(self, jetstream: JetStreamContext) -> None:
        import nats.js.errors

        if self._stream_ready or self.options.stream is None:
            return
        try:
            await jetstream.stream_info(self.options.stream)
        except nats.js.errors.NotFoundError:
            await jetstream.add_stream(
                name=self.options.stream, subjects=[self.options.subject_filter]
            )
        self._stream_ready = True

    async def deliver(self, batch: Sequence[Event]) -> None:
        import nats.errors
        import nats.js.errors

        jetstream = await self._connect()
        futures: list[asyncio.Future[Any]] = []
        try:
            await self._ensure_stream(jetstream)
            for event in batch:
                futures.append(
                    await jetstream.publish_async(
                        self.options.subject_for(event),
                        event.to_json(),
                        wait_stall=self.timeout,
                        stream=self.options.stream,
                        headers={"Nats-Msg-Id": event.id},
                    )
                )
            await asyncio.wait_for(asyncio.gather(*futures), timeout=self.timeout)
        except (
            nats.js.errors.NoStreamResponseError,
            nats.js.errors.ServiceUnavailableError,
            nats.js.errors.TooManyStalledMsgsError,
        ) as error:
            raise SinkUnavailable(f"JetStream is not answering: {type(error).__name__}") from None
        except nats.js.errors.APIError as error:
            raise DeliveryFailed(f"JetStream refused the message: {error.description}") from None
        except (nats.errors.Error, OSError, TimeoutError) as error:
            raise SinkUnavailable(f"NATS is unavailable: {type(error).__name__}") from None
        finally:
            for future in futures:
                future.cancel()


def create(config: SinkConfig) -> Sink:
    return NatsSink(config)


KIND = SinkKind(
    name="nats",
    options=NatsOptions,
    create=create,
    batch_size=200,
    max_in_flight=1,
)
