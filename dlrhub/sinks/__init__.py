"""Durable at-least-once fan-out of stored events to downstream sinks."""
