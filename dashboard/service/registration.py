"""Webhook registration: ``vigil serve`` asks Label Studio and MLflow to call it back, with a secret.

Idempotent (run at every start and after every scheduled label sync): one webhook per Label Studio
project posting to ``<public_url>/hooks/label-studio/<model>`` with the secret in the ``X-Vigil-Secret``
header, and one MLflow registry webhook named ``vigil-serve`` posting to ``<public_url>/hooks/mlflow``,
signed by MLflow with the same secret. The secret is ``VIGIL_SERVE_SECRET``, else a random key kept in
``<data_dir>/serve.secret`` (created with mode 0600).
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from connectors.labelstudio import LabelStudioClient, LabelStudioError
from connectors.registry import RegistryError
from dashboard.context import Context
from dashboard.settings import Settings

LS_ACTIONS: tuple[str, ...] = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED",
                               "ANNOTATIONS_DELETED")
SECRET_HEADER = "X-Vigil-Secret"
MLFLOW_EVENTS: tuple[str, ...] = ("model_version.created", "model_version_alias.created",
                                  "model_version_alias.deleted")
MLFLOW_WEBHOOK_NAME = "vigil-serve"
log = logging.getLogger(__name__)


def webhook_secret(settings: Settings) -> str:
    """``VIGIL_SERVE_SECRET``, else the key in ``serve.secret_file`` (created on first use, mode 0600)."""
    env = os.environ.get("VIGIL_SERVE_SECRET")
    if env:
        return env
    path = settings.serve.secret_file or settings.data_dir / "serve.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return Path(path).read_text(encoding="utf-8").strip()


def label_studio_url(settings: Settings, model: str) -> str:
    return f"{settings.serve.callback_url()}/hooks/label-studio/{model}"


def mlflow_url(settings: Settings) -> str:
    return f"{settings.serve.callback_url()}/hooks/mlflow"


def label_studio(ctx: Context, model: str, client: LabelStudioClient) -> int | None:
    """Register (or confirm) the webhook of the model's project; None when it has no project yet."""
    from dashboard.learning.annotation import project_id

    project = project_id(ctx, model)
    if project is None:
        return None
    return client.ensure_webhook(project, label_studio_url(ctx.settings, model), LS_ACTIONS,
                                 {SECRET_HEADER: webhook_secret(ctx.settings)})


@dataclass
class Registration:
    """What the start-up registration achieved (shown by ``/healthz`` and printed at start)."""

    label_studio: dict[str, str] = field(default_factory=dict)  # model -> "webhook N" or why not
    mlflow: str = "not tried"

    def lines(self) -> list[str]:
        out = [f"Label Studio webhook of {m}: {v}" for m, v in sorted(self.label_studio.items())]
        return [*out, f"MLflow registry webhook: {self.mlflow}"]


def register_all(ctx: Context) -> Registration:
    """Register every webhook it can; a system that is down or unsupported is reported, never fatal (the
    scheduled sync and the alias poller cover what its webhooks would have said)."""
    reg = Registration()
    if ctx.settings.label_studio_url:
        try:
            from dashboard.learning.annotation import client_for

            client = client_for(ctx)
            for model in sorted(ctx.settings.models):
                hook = label_studio(ctx, model, client)
                reg.label_studio[model] = f"webhook {hook}" if hook is not None else \
                    "no project yet (registered within a tick of the first batch sent)"
        except LabelStudioError as exc:
            for model in ctx.settings.models:
                reg.label_studio.setdefault(model, f"not registered: {exc}")
    else:
        reg.label_studio = dict.fromkeys(ctx.settings.models, "Label Studio is not configured")
    try:
        info = ctx.registry.ensure_webhook(MLFLOW_WEBHOOK_NAME, mlflow_url(ctx.settings), MLFLOW_EVENTS,
                                           webhook_secret(ctx.settings))
        reg.mlflow = f"webhook {info.id} -> {info.url}"
    except RegistryError as exc:
        reg.mlflow = f"not registered ({exc}); the aliases monitor polls instead"
    return reg
