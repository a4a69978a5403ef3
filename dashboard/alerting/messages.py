"""The words of a notification: subject, plain-text body and JSON fields, from the alert as it was queued.

Why from the queued snapshot: a retry an hour later must say what the first attempt said (same id, same
content), so a receiver that dedups by id loses nothing.
"""

from __future__ import annotations

import json
from typing import Any

from connectors.routes import Message

EVENTS: dict[str, str] = {"opened": "OPEN", "repeat": "STILL FAILING", "resolved": "RESOLVED"}
_SHOWN = ("state", "severity", "kind", "subject", "first_seen", "last_seen", "count")


def page_title(page: str) -> str:
    """``8_compliance.py`` -> ``Compliance``: the page a reader opens, named as the app names it."""
    stem = page.removesuffix(".py").partition("_")[2] or page
    return stem.replace("_", " ").capitalize()


def scope(alert: dict[str, Any]) -> str:
    return f"{alert['model']} v{alert['version']}" if alert.get("version") else str(alert["model"])


def subject_line(kind: str, alert: dict[str, Any]) -> str:
    """``[Vigil] OPEN blocking credit-risk v3: policy drift_share`` (model, policy and state at a glance)."""
    return (f"[Vigil] {EVENTS.get(kind, kind.upper())} {alert['severity']} {scope(alert)}: "
            f"{alert['kind']} {alert['subject']}")


def body(notification_id: str, kind: str, alert: dict[str, Any]) -> str:
    lines = [str(alert["summary"]), ""]
    lines += [f"{k.replace('_', ' ')}: {alert.get(k)}" for k in _SHOWN]
    if alert.get("acked_by"):
        lines.append(f"acknowledged by: {alert['acked_by']} ({alert.get('note') or 'no note'})")
    if alert.get("resolved_at"):
        lines.append(f"resolved at: {alert['resolved_at']} by {alert.get('resolved_by')}")
    evidence = alert.get("evidence") or {}
    if evidence:
        lines += ["", "evidence:"] + [f"  {k}: {v}" for k, v in sorted(evidence.items())]
    page = page_title(str(alert["page"])) if alert.get("page") else ""
    lines += ["", f"See the Alerts page (alert #{alert['id']})" + (f" and the {page} page." if page else "."),
              f"notification {notification_id} ({kind})"]
    return "\n".join(lines)


def message_for(notification_id: str, kind: str, alert_json: str) -> Message:
    """The message of one queued notification (``alert_json`` is the alert snapshot stored with it)."""
    alert = json.loads(alert_json)
    payload = {"event": kind, "alert": alert}
    return Message(id=notification_id, subject=subject_line(kind, alert), text=body(notification_id, kind, alert),
                   payload=payload)
