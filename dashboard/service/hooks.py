"""Webhook payloads in, events out: verification and parsing, no I/O.

* **MLflow** (registry webhooks, MLflow >= 3.3) signs ``"<delivery id>.<timestamp>.<body>"`` with
  HMAC-SHA256 under the webhook's secret and sends ``X-MLflow-Signature: v1,<base64>``,
  ``X-MLflow-Timestamp`` (Unix seconds) and ``X-MLflow-Delivery-Id`` (mlflow/webhooks/delivery.py). A bad
  or missing signature, a timestamp more than :data:`MAX_AGE_S` away from now, or (checked by the
  caller, in the store) a delivery id seen before is rejected.
* **Label Studio** sends the headers registered with the webhook; Vigil registers ``X-Vigil-Secret``.
  Its body names the action and the task (``task.id``; bulk actions list ``tasks``/``annotations``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dashboard.service.registration import LS_ACTIONS, SECRET_HEADER

MAX_AGE_S = 300.0
SIGNATURE_VERSION = "v1"


class HookRejected(Exception):
    """A webhook Vigil refuses; ``status`` is the HTTP answer, the message the audited reason."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Event:
    """One accepted webhook, queued for the event worker."""

    source: str  # "label_studio" | "mlflow"
    kind: str  # Label Studio action, or MLflow "entity.action"
    model: str
    received: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    delivery_id: str | None = None

    @property
    def coalesce_key(self) -> str | None:
        """Events with the same key do the same work (a label sync of one model): one queued is enough."""
        return f"label_studio:{self.model}" if self.source == "label_studio" else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lower = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lower), None)


def mlflow_signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def verify_mlflow(secret: str, headers: Mapping[str, str], body: bytes, now: datetime) -> str:
    """Check signature and age; returns the delivery id (the caller refuses one seen before)."""
    signature = _header(headers, "X-MLflow-Signature")
    timestamp = _header(headers, "X-MLflow-Timestamp")
    delivery_id = _header(headers, "X-MLflow-Delivery-Id")
    if not signature or not timestamp or not delivery_id:
        raise HookRejected("missing X-MLflow-Signature, X-MLflow-Timestamp or X-MLflow-Delivery-Id "
                           "(is the webhook created with a secret?)")
    if not hmac.compare_digest(signature.encode(), mlflow_signature(secret, delivery_id, timestamp, body).encode()):
        raise HookRejected("bad X-MLflow-Signature (the webhook's secret is not VIGIL_SERVE_SECRET)")
    try:
        age = now.timestamp() - int(timestamp)
    except ValueError:
        raise HookRejected(f"X-MLflow-Timestamp '{timestamp[:40]}' is not Unix seconds") from None
    if abs(age) > MAX_AGE_S:
        raise HookRejected(f"X-MLflow-Timestamp is {age:.0f} s from now (more than {MAX_AGE_S:.0f} s): a replay "
                           "or a clock out of sync")
    return delivery_id


def mlflow_event(body: bytes, delivery_id: str, now: datetime) -> Event | None:
    """The event of a verified MLflow body; None for events Vigil does not act on."""
    payload = _json(body)
    kind = f"{payload.get('entity')}.{payload.get('action')}"
    data = payload.get("data") or {}
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
        raise HookRejected("the MLflow payload has no data.name", 400)
    if kind not in ("model_version.created", "model_version_alias.created", "model_version_alias.deleted"):
        return None
    return Event("mlflow", kind, data["name"], now, dict(data), delivery_id)


def verify_label_studio(secret: str, headers: Mapping[str, str]) -> None:
    given = _header(headers, SECRET_HEADER) or ""
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise HookRejected(f"missing or wrong {SECRET_HEADER} header (the project's webhook was not registered by "
                           "this `vigil serve`)")


def label_studio_event(model: str, body: bytes, now: datetime) -> Event | None:
    """The event of a verified Label Studio body; None for actions Vigil does not act on."""
    payload = _json(body)
    action = str(payload.get("action") or "")
    if action not in LS_ACTIONS:
        return None
    tasks: list[int] = []
    if isinstance(payload.get("task"), Mapping) and payload["task"].get("id") is not None:
        tasks.append(payload["task"]["id"])
    for item in payload.get("tasks") or []:
        if isinstance(item, Mapping) and item.get("id") is not None:
            tasks.append(item["id"])
    for item in payload.get("annotations") or []:
        if isinstance(item, Mapping) and item.get("task") is not None:
            tasks.append(item["task"])
    return Event("label_studio", action, model, now, {"tasks": sorted({int(t) for t in tasks if str(t).isdigit()})})


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HookRejected("the body is not JSON", 400) from None
    if not isinstance(payload, dict):
        raise HookRejected("the body is not a JSON object", 400)
    return payload
