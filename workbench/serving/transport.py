"""The stream transport interface: what the consumer logic needs from a message broker.

The consumer (``workbench.serving.stream``) talks only to this protocol, so a Kafka adapter
can be added beside the NATS one without touching the consumer logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class InMessage:
    """One received event.

    ``id`` is stable across redeliveries of the same event (the broker's sequence number or
    the producer's message id): the prediction log is unique on it. ``deliveries`` counts
    how many times the broker has delivered it (1 on the first try).
    """

    id: str
    data: bytes
    deliveries: int = 1
    handle: Any = field(default=None, repr=False)


class Transport(Protocol):
    """A broker connection for one project: features in, predictions out, a dead-letter subject."""

    features_subject: str
    predictions_subject: str
    dlq_subject: str
    max_deliver: int

    async def connect(self) -> None:
        """Connect and create the stream/topic and the durable consumer when missing."""

    async def fetch(self, batch_size: int, timeout: float) -> list[InMessage]:
        """Up to ``batch_size`` messages, waiting at most ``timeout`` seconds ([] when none came)."""
        ...

    async def publish(self, subject: str, data: bytes, *, msg_id: str | None = None) -> None:
        """Publish durably; a repeated ``msg_id`` is dropped by the broker when it supports de-duplication."""

    async def publish_batch(self, subject: str, items: list[tuple[bytes, str | None]]) -> None:
        """Publish durably every ``(data, msg_id)``; returns once the broker stored them all, raises otherwise."""

    async def ack(self, message: InMessage) -> None:
        """The message is done: never deliver it again."""

    async def nak(self, message: InMessage, *, delay: float = 1.0) -> None:
        """Processing failed for now: deliver it again after ``delay`` seconds."""

    async def close(self) -> None:
        """Drain and close the connection."""


def subjects(project_slug: str) -> dict[str, str]:
    """The three subjects of a project, declared as data (shared by every transport)."""
    base = f"workbench.{project_slug}"
    return {"features": f"{base}.features", "predictions": f"{base}.predictions", "dlq": f"{base}.dlq"}
