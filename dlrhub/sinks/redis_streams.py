"""`redis` sink: XADD each event to a Redis stream (redis-py asyncio).

| key      | default                    | meaning                                          |
|----------|----------------------------|--------------------------------------------------|
| `url`    | `redis://127.0.0.1:6379/0` | `redis://[:password@]host:port/db` or `rediss://` |
| `stream` | `dlrhub:events`            | stream key                                       |
| `maxlen` | 1000000                    | approximate trim (`MAXLEN ~`); 0 = never trim    |

Entry fields: `id` (the event id, for consumers to drop redeliveries), `seq`,
`type`, `event` (the event as JSON). A batch is one pipelined round trip in
store order; the stream assigns entry ids, so a redelivered event is a new
entry with the same `id` field. A lost connection is an outage (retried until
Redis is back); an error answer (wrong type, out of memory) is a failed attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

from dlrhub.event import Event
from dlrhub.settings_schema import Check
from dlrhub.sinks.base import DeliveryFailed, Sink, SinkKind, SinkUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from dlrhub.sinks.settings import SinkConfig


def _redis_url_problem(url: str) -> str | None:
    if urlsplit(url).scheme in ("redis", "rediss", "unix"):
        return None
    return "must be a redis://, rediss:// or unix:// URL"


@dataclass(frozen=True, slots=True)
class RedisOptions:
    url: Annotated[str, Check(_redis_url_problem)] = field(
        default="redis://127.0.0.1:6379/0", repr=False
    )
    stream: Annotated[str, Check(lambda text: None if text else "must not be empty")] = (
        "dlrhub:events"
    )
    maxlen: Annotated[
        int, Check(lambda size: None if size >= 0 else "must be 0 (never trim) or more")
    ] = 1_000_000

    def secrets(self) -> tuple[str, ...]:
        password = urlsplit(self.url).password
        return (password,) if password else ()

    @property
    def display_url(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


class RedisStreamSink:
    def __init__(self, config: SinkConfig) -> None:
        options = config.options
        assert isinstance(options, RedisOptions)
        self.options = options
        self.timeout = config.timeout
        self._client: Redis | None = None

    async def open(self) -> None:
        from redis.asyncio import Redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries inside the client: the engine retries with its own backoff.
        self._client = Redis.from_url(
            self.options.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(self, batch: Sequence[Event]) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        if self._client is None:
            await self.open()
        assert self._client is not None
        pipeline = self._client.pipeline(transaction=False)
        for event in batch:
            pipeline.xadd(
                self.options.stream,
                {
                    "id": event.id,
                    "seq": str(event.seq),
                    "type": event.type.value,
                    "event": event.to_json(),
                },
                maxlen=self.options.maxlen or None,
                approximate=True,
            )
        where = self.options.display_url
        try:
            await pipeline.execute()
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            raise SinkUnavailable(
                f"redis at {where} is unavailable: {type(error).__name__}"
            ) from None
        except RedisError as error:
            raise DeliveryFailed(f"redis at {where} refused XADD: {error}") from None


def create(config: SinkConfig) -> Sink:
    return RedisStreamSink(config)


KIND = SinkKind(
    name="redis",
    options=RedisOptions,
    create=create,
    batch_size=200,
    max_in_flight=1,
)
