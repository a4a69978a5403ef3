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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from functools import cache
from typing import Any

from connectors.windows import Window
from dashboard.context import Context
from dashboard.governance.policy_metrics import Measurement
from dashboard.settings import PolicySpec

TABLE = "policy_measurements"
_DDL = (f"CREATE TABLE IF NOT EXISTS {TABLE} (key VARCHAR PRIMARY KEY, model VARCHAR, data_version VARCHAR, "
        "created TIMESTAMP, payload VARCHAR)")


@cache
def _vigil_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vigil")
    except PackageNotFoundError:
        return "unknown"


def keepable(basis: str, phase: str) -> bool:
    """Whether a metric of this time basis and default phase is a function of logs, labels and config."""
    return basis == "data" and phase == "production"


def key_for(ctx: Context, model: str, version: str | None, spec: PolicySpec, window: Window, data_version: str,
            champion: str | None) -> str:
    """The digest of everything a kept measurement depends on (see the module docstring)."""
    parts = [_vigil_version(), model, version, repr(ctx.model(model)), repr(spec), window.start.isoformat(),
             window.end.isoformat(), data_version, champion]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def load(ctx: Context, keys: Sequence[str]) -> dict[str, list[Measurement]]:
    """The kept measurements among ``keys`` (a damaged row is left out, so it is measured again)."""
    if not keys:
        return {}
    with ctx.store.connect() as con:
        con.execute(_DDL)
        rows = con.execute(f"SELECT key, payload FROM {TABLE} WHERE key IN (SELECT unnest(?))", [list(keys)]).fetchall()
    out: dict[str, list[Measurement]] = {}
    for key, payload in rows:
        try:
            out[str(key)] = [Measurement(**m) for m in json.loads(payload)]
        except (TypeError, ValueError):
            continue
    return out


def save(ctx: Context, model: str, data_version: str, measured: dict[str, list[Measurement]]) -> None:
    """Keep ``measured`` (key -> measurements) in one write, dropping the model's kept measurements of
    other data versions (they can never match again)."""
    if not measured:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    rows: list[Any] = [(k, model, data_version, now, json.dumps([asdict(m) for m in ms]))
                       for k, ms in measured.items()]
    with ctx.store.connect() as con:
        con.execute(_DDL)
        con.execute("BEGIN")
        try:
            con.execute(f"DELETE FROM {TABLE} WHERE model = ? AND data_version <> ?", [model, data_version])
            con.execute(f"DELETE FROM {TABLE} WHERE key IN (SELECT unnest(?))", [list(measured)])
            con.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?)", rows)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
