"""Registry readings kept between processes, for a registry in a local sqlite file.

Why: every ``vigil`` call starts a new process, and the first MLflow lookup against a sqlite store pays
for importing MLflow and SQLAlchemy and opening the store (about 2.5 s), often to learn again which version
``champion`` names. A reading is kept in a JSON file beside Vigil's data, keyed on the state of the sqlite
file (size and modification time of the database and its write-ahead log): any write to the registry, by
Vigil or anyone else, changes the key and empties the cache, so a kept reading is never stale.

A reading is kept only when the file was quiet for :data:`QUIET_S` before it was taken and did not change
while it was taken: file times tick coarsely (a few milliseconds), so a write in the same tick as an
earlier one could otherwise leave the key unchanged. An HTTP tracking server has no such key and is
always asked.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

QUIET_S = 2.0
MAX_ENTRIES = 512


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (None for any other store, or in memory)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


class RegistryReadCache:
    """Readings of one sqlite registry, in ``cache_file``, valid while the database file is unchanged."""

    def __init__(self, database: Path, cache_file: Path) -> None:
        self.database = database
        self.cache_file = cache_file

    def _state(self) -> list[int] | None:
        """Size and mtime (ns) of the database and its WAL; None when the database does not exist."""
        out: list[int] = []
        for suffix in ("", "-wal"):
            try:
                st = os.stat(f"{self.database}{suffix}")
            except FileNotFoundError:
                if not suffix:
                    return None
                out += [0, 0]
                continue
            out += [st.st_size, st.st_mtime_ns]
        return out

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.cache_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str, read: Callable[[], T], encode: Callable[[T], Any],
            decode: Callable[[Any], T]) -> T:
        """The reading under ``key``: kept, or taken with ``read`` (and kept when the file was quiet)."""
        before = self._state()
        if before is None:
            return read()
        data = self._load()
        entries = data.get("entries") if data.get("state") == before else None
        if isinstance(entries, dict) and key in entries:
            try:
                return decode(entries[key])
            except (KeyError, TypeError, ValueError):
                pass  # a cache file of another Vigil version: read again and overwrite
        value = read()
        after = self._state()
        quiet = max(before[1], before[3]) < time.time_ns() - int(QUIET_S * 1e9)
        if after == before and quiet:
            kept = dict(entries) if isinstance(entries, dict) and len(entries) < MAX_ENTRIES else {}
            kept[key] = encode(value)
            self._write({"state": before, "entries": kept})
        return value

    def _write(self, data: dict[str, Any]) -> None:
        """Replace the file atomically (a concurrent reader sees the old or the new one, never a mix)."""
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.cache_file.parent, prefix=".registry-cache-")
        except OSError:
            return  # a read-only data folder: work without the cache
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.cache_file)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
