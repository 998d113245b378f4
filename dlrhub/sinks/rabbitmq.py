"""`rabbitmq` sink: publish persistent messages with publisher confirms (aio-pika).

| key           | default                              | meaning                              |
|---------------|--------------------------------------|--------------------------------------|
| `url`         | `amqp://guest:guest@127.0.0.1:5672/` | `amqp[s]://user:pass@host:port/vhost` |
| `exchange`    | `""` (the default exchange)          | exchange to publish to (must exist)  |
| `routing_key` | `dlrhub.{provider}.{type}.{status}`  | template with `{source}`,            |
|               |                                      | `{provider}`, `{type}`, `{status}`   |
| `mandatory`   | true                                 | a message no queue takes is a failure |

Messages: body the event as JSON, `content_type` application/json,
`delivery_mode` persistent, `message_id` the event id, `type` the event type,
header `seq`. A batch is published in store order on one channel and every
confirm is awaited. A nack (e.g. a queue with `x-overflow=reject-publish` that
is full) or an unroutable message is a failed attempt; a lost or blocked
connection (no confirm in time) is an outage: the connection is dropped and
opened again on the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated
from urllib.parse import unquote, urlsplit

from dlrhub.event import Event
from dlrhub.settings_schema import Check
from dlrhub.sinks.base import DeliveryFailed, Sink, SinkKind, SinkUnavailable

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

    from dlrhub.sinks.settings import SinkConfig

PLACEHOLDER = re.compile(r"\{(\w+)\}")
FIELDS = frozenset({"source", "provider", "type", "status"})


def _amqp_url_problem(url: str) -> str | None:
    if urlsplit(url).scheme in ("amqp", "amqps"):
        return None
    return "must be an amqp:// or amqps:// URL"


def _routing_key_problem(template: str) -> str | None:
    if set(PLACEHOLDER.findall(template)) - FIELDS or len(template) > 255:
        return "at most 255 characters; fields allowed: {source}, {provider}, {type}, {status}"
    return None


@dataclass(frozen=True, slots=True)
class RabbitOptions:
    url: Annotated[str, Check(_amqp_url_problem)] = field(
        default="amqp://guest:guest@127.0.0.1:5672/", repr=False
    )
    exchange: str = ""
    routing_key: Annotated[str, Check(_routing_key_problem)] = "dlrhub.{provider}.{type}.{status}"
    mandatory: bool = True

    def secrets(self) -> tuple[str, ...]:
        password = urlsplit(self.url).password
        return (password, unquote(password)) if password else ()

    def routing_key_for(self, event: Event) -> str:
        values = {
            "source": event.source,
            "provider": event.provider,
            "type": event.type.value,
            "status": event.status.value if event.status is not None else "none",
        }
        return PLACEHOLDER.sub(lambda match: values[match.group(1)], self.routing_key)

    @property
    def display_url(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 5672}{parts.path}"


class RabbitSink:
    def __init__(self, config: SinkConfig) -> None:
        options = config.options
        assert isinstance(options, RabbitOptions)
        self.options = options
        self.timeout = config.timeout
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        connection = self._connection
        self._connection = self._channel = self._exchange = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=self.timeout)

    async def _connect(self) -> AbstractExchange:
        import aio_pika

        if (
            self._exchange is not None
            and self._channel is not None
            and not self._channel.is_closed
            and self._connection is not None
            and not self._connection.is_closed
        ):
            return self._exchange
        await self.close()
        try:
            connection = await aio_pika.connect(self.options.url, timeout=self.timeout)
        except (aio_pika.exceptions.AMQPError, OSError, TimeoutError) as error:
            raise SinkUnavailable(
                f"cannot connect to RabbitMQ at {self.options.display_url}: {type(error).__name__}"
            ) from None
        self._connection = connection
        try:
            self._channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            if self.options.exchange:
                self._exchange = await self._channel.get_exchange(
                    self.options.exchange, ensure=True
                )
            else:
                self._exchange = self._channel.default_exchange
        except aio_pika.exceptions.ChannelNotFoundEntity:
            await self.close()
            raise DeliveryFailed(f"RabbitMQ has no exchange {self.options.exchange!r}") from None
        except (aio_pika.exceptions.AMQPError, OSError, TimeoutError) as error:
            await self.close()
            raise SinkUnavailable(f"RabbitMQ channel failed: {type(error).__name__}") from None
        return self._exchange

    async def deliver(self, batch: Sequence[Event]) -> None:
        import aio_pika
        import aiormq.exceptions

        exchange = await self._connect()
        messages = [
            (
                aio_pika.Message(
                    event.to_json(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=event.id,
                    type=event.type.value,
                    headers={"seq": event.seq},
                ),
                self.options.routing_key_for(event),
            )
            for event in batch
        ]
        # Tasks start in order and aiormq takes a FIFO lock per publish, so the
        # broker receives the batch in store order; confirms are awaited together.
        publishes = [
            asyncio.ensure_future(
                exchange.publish(
                    message, routing_key, mandatory=self.options.mandatory, timeout=self.timeout
                )
            )
            for message, routing_key in messages
        ]
        try:
            await asyncio.gather(*publishes)
        except aiormq.exceptions.PublishError as error:
            raise DeliveryFailed(f"RabbitMQ did not route the message: {error}") from None
        except aiormq.exceptions.DeliveryError as error:
            raise DeliveryFailed(f"RabbitMQ refused the message (nack): {error}") from None
        except aiormq.exceptions.ChannelClosed as error:
            await self.close()
            raise DeliveryFailed(f"RabbitMQ closed the channel: {error}") from None
        except (
            aiormq.exceptions.AMQPError,
            aiormq.exceptions.ChannelInvalidStateError,
            OSError,
            TimeoutError,
        ) as error:
            await self.close()
            raise SinkUnavailable(
                f"RabbitMQ at {self.options.display_url} is unavailable: {type(error).__name__}"
            ) from None
        finally:
            for publish in publishes:
                publish.cancel()
            await asyncio.gather(*publishes, return_exceptions=True)


def create(config: SinkConfig) -> Sink:
    return RabbitSink(config)


KIND = SinkKind(
    name="rabbitmq",
    options=RabbitOptions,
    create=create,
    batch_size=200,
    max_in_flight=1,
)
