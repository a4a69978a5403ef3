"""Delivery of alert notifications to the configured routes (filled in by the delivery commit)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dashboard.context import Context


@dataclass(frozen=True)
class DeliveryReport:
    """What one :func:`deliver_due` call did: notifications queued as repeats, attempts sent and failed."""

    repeats_queued: int = 0
    sent: int = 0
    failed: int = 0
    pending: int = 0  # still waiting for a later call (back-off)
    errors: list[str] = field(default_factory=list)


def deliver_due(ctx: Context, now: datetime) -> DeliveryReport:
    """Send every pending notification on every configured route; failures retry with back-off."""
    raise NotImplementedError("delivery arrives with connectors/routes.py")
