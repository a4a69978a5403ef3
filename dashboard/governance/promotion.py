"""Promotion requests: a data scientist asks for a candidate that passed the gate to become champion.

Why here and not in the gate: the gate judges a candidate; asking for and deciding a promotion is a
governance step (a manager decides it in :mod:`dashboard.governance.approvals`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from dashboard.access.roles import Actor, require
from dashboard.audit import trail
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.lifecycle.gate import TAG_PREFIX


def request_promotion(ctx: Context, actor: Actor, model: str, version: str, note: str = "") -> dict[str, str]:
    """Record a promotion request on the version (tags + audit entry); a manager decides."""
    require(actor, "promotion.request")
    v = ctx.registry.version(model, version)
    verdict = v.tags.get(TAG_PREFIX + "verdict")
    if verdict is None:
        raise VigilError(f"version {version} of '{model}' has no gate verdict yet; run the gate (a retrain does) "
                         "before requesting promotion")
    if verdict != "pass":
        raise VigilError(f"version {version} of '{model}' failed the gate ({v.tags.get(TAG_PREFIX + 'failed')}); "
                         "a failing candidate stays a candidate")
    if "champion" in v.aliases:
        raise VigilError(f"version {version} of '{model}' is already the champion")
    when = datetime.now(UTC).isoformat(timespec="seconds")
    tags = {"vigil.promotion.status": "requested", "vigil.promotion.requested_by": actor.name,
            "vigil.promotion.requested_at": when, "vigil.promotion.note": note or "-"}
    for key, text in tags.items():
        ctx.registry.set_version_tag(model, version, key, text)
    trail.record(ctx.store, actor, "promotion.request", model, {"version": version, "note": note, "verdict": verdict})
    return tags
