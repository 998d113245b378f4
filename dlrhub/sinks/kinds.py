"""The sink kinds `[[sinks]] kind = ...` can name: one module each."""

from __future__ import annotations

from dlrhub.sinks import jsonl, nats_jetstream, rabbitmq, redis_streams, stdout, webhook
from dlrhub.sinks.base import Sink, SinkKind
from dlrhub.sinks.settings import SinkConfig

KINDS: dict[str, SinkKind] = {
    kind.name: kind
    for kind in (
        webhook.KIND,
        jsonl.KIND,
        redis_streams.KIND,
        nats_jetstream.KIND,
        rabbitmq.KIND,
        stdout.KIND,
    )
}


def create_sink(config: SinkConfig) -> Sink:
    return KINDS[config.kind].create(config)
