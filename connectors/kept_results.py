"""Results derived from a model's logs and labels, kept in the store under their data version.

Why: a page, ``vigil check`` and ``vigil serve`` ask for the same aggregates over unchanged data again and
again (on a 10M-row store, seconds each). A result is kept under a key its caller builds from everything
the result depends on besides the data, and under the model's data version (which every ingest and label
sync changes); a lookup with another data version finds nothing, so a kept result is never stale. Saving
drops the model's results of other data versions, which can never match again.

A result whose key already holds a digest of every input row (content-addressed: e.g. CBPE's reference fit,
keyed on a hash of the reference's labelled rows) is kept under :data:`CONTENT` instead: it stays valid
across ingests that do not touch those rows, and the newest :data:`CONTENT_KEEP` of a model are kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

TABLE = "kept_results"
#: The data version of content-addressed results: valid whatever the model's data version.
CONTENT = "content"
CONTENT_KEEP = 16
_DDL = (f"CREATE TABLE IF NOT EXISTS {TABLE} (key VARCHAR PRIMARY KEY, model VARCHAR, data_version VARCHAR, "
        "created TIMESTAMP, payload VARCHAR)")


@cache
def code_version() -> str:
    """Vigil's version, part of every caller's key: a new release may compute a result differently."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vigil")
    except PackageNotFoundError:
        return "unknown"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):  # pandas' Timestamp too
        return {"$datetime": value.isoformat()}
    raise TypeError(f"{type(value).__name__} cannot be kept")


def _decode(obj: dict[str, Any]) -> Any:
    return datetime.fromisoformat(obj["$datetime"]) if set(obj) == {"$datetime"} else obj


def load(store: Any, model: str, data_version: str, keys: Sequence[str]) -> dict[str, Any]:
    """The kept JSON payloads among ``keys`` for this data version (an unreadable one is left out)."""
    if not keys:
        return {}
    with store.connect() as con:
        con.execute(_DDL)
        rows = con.execute(f"SELECT key, payload FROM {TABLE} WHERE model = ? AND data_version = ? "
                           "AND key IN (SELECT unnest(?))", [model, data_version, list(keys)]).fetchall()
    out: dict[str, Any] = {}
    for key, payload in rows:
        try:
            out[str(key)] = json.loads(payload, object_hook=_decode)
        except ValueError:
            continue
    return out


def save(store: Any, model: str, data_version: str, payloads: Mapping[str, Any]) -> None:
    """Keep ``payloads`` (key -> JSON-able value; datetimes come back as datetimes) in one transaction."""
    if not payloads:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [(k, model, data_version, now, json.dumps(v, default=_encode)) for k, v in payloads.items()]
    with store.connect() as con:
        con.execute(_DDL)
        con.execute("BEGIN")
        try:
            con.execute(f"DELETE FROM {TABLE} WHERE model = ? AND data_version NOT IN (?, ?)",
                        [model, data_version, CONTENT])
            con.execute(f"DELETE FROM {TABLE} WHERE key IN (SELECT unnest(?))", [list(payloads)])
            con.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?)", rows)
            if data_version == CONTENT:
                con.execute(f"DELETE FROM {TABLE} WHERE model = ? AND data_version = ? AND key NOT IN ("
                            f"SELECT key FROM {TABLE} WHERE model = ? AND data_version = ? "
                            "ORDER BY created DESC, key DESC LIMIT ?)", [model, CONTENT, model, CONTENT, CONTENT_KEEP])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise


def clear(store: Any) -> None:
    """Drop every kept result (they are recomputed on demand): for benchmarks that time a first computation."""
    with store.connect() as con:
        con.execute(_DDL)
        con.execute(f"DELETE FROM {TABLE}")


def count(store: Any) -> int:
    """How many results the store keeps."""
    with store.connect() as con:
        con.execute(_DDL)
        row = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
    return int(row[0]) if row else 0
