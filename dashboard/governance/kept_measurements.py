"""Measurements of policies kept in the store, reused while nothing they depend on changed.

Why: the Overview, the Compliance page, ``vigil check`` and ``vigil serve``'s scheduled runs evaluate the
same policies over the same windows again and again; on a 10M-row store that is drift, fairness, quality
and data-quality analyses (12 s) for verdicts that cannot have changed. A measurement is kept under a key
of everything its value depends on, so a kept one is never stale:

- the model's logs and labels (the data version, which every ingest and label sync changes), the model
  version and the policy's window (resolved from the last log, so also a function of the data);
- the model's whole configuration (features, thresholds, reference, drift overrides, the policy itself);
- the champion version (a training-data reference follows the alias) and Vigil's own version.

Only metrics computed from logs, labels and the configuration alone are kept (:func:`keepable`): the
production metrics whose time basis is the logs. Findings, cards, gate evidence, imported Great
Expectations results and ingest rejections depend on state outside the logs and are always measured.
The measurements live in :mod:`connectors.kept_results` under the model's data version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict

from connectors import kept_results
from connectors.windows import Window
from dashboard.context import Context
from dashboard.governance.policy_metrics import Measurement
from dashboard.settings import PolicySpec


def keepable(basis: str, phase: str) -> bool:
    """Whether a metric of this time basis and default phase is a function of logs, labels and config."""
    return basis == "data" and phase == "production"


def key_for(ctx: Context, model: str, version: str | None, spec: PolicySpec, window: Window, data_version: str,
            champion: str | None) -> str:
    """The digest of everything a kept measurement depends on (see the module docstring)."""
    parts = [kept_results.code_version(), model, version, repr(ctx.model(model)), repr(spec), window.start.isoformat(),
             window.end.isoformat(), data_version, champion]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def load(ctx: Context, model: str, data_version: str, keys: Sequence[str]) -> dict[str, list[Measurement]]:
    """The kept measurements among ``keys`` (a damaged one is left out, so it is measured again)."""
    out: dict[str, list[Measurement]] = {}
    for key, payload in kept_results.load(ctx.store, model, data_version, keys).items():
        try:
            out[key] = [Measurement(**m) for m in payload]
        except TypeError:
            continue
    return out


def save(ctx: Context, model: str, data_version: str, measured: dict[str, list[Measurement]]) -> None:
    """Keep ``measured`` (key -> measurements) in one write."""
    kept_results.save(ctx.store, model, data_version, {k: [asdict(m) for m in ms] for k, ms in measured.items()})
