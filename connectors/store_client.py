"""A DuckDB-connection look-alike that runs its SQL in the process owning the store.

It offers the part of ``DuckDBPyConnection`` Vigil uses (``execute``/``executemany`` returning the
connection, ``fetchone``/``fetchall``/``df``, ``description``, ``register``/``unregister``), so the
queries in :mod:`connectors.queries` and the domains run unchanged whichever process they are in. A
DuckDB error raised in the owner is raised here as the same ``duckdb`` exception class, so callers'
``except duckdb.ConstraintException`` keeps working. While waiting for an answer the client checks the
thread's cancel predicate and hangs up when it holds; the owner then interrupts the query.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from connectors import store_wire as wire
from connectors.store_owner import PROTOCOL, CancelCheck, QueryCancelled, cancel_check

_POLL_S = 0.2


class ProtocolMismatch(Exception):
    """The owner speaks another version of the request format (one side was upgraded)."""


class RemoteConnection:
    """One connection to the owner = one cursor there (its temp tables and transaction live there)."""

    def __init__(self, sock: socket.socket, store: Path, check: CancelCheck | None) -> None:
        self._sock = sock
        self._store = store
        self._check = check
        self.description: list[tuple[str, str]] | None = None

    @classmethod
    def open(cls, sock_path: Path, store: Path, timeout_s: float, exclusive: bool = False) -> RemoteConnection:
        """Connect to the owner's socket, retrying while it starts; OSError after ``timeout_s``.

        ``exclusive`` waits (up to ``timeout_s``) until no other check-then-write operation is running."""
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(max(deadline - time.monotonic(), 0.1))  # a stopped owner still accepts
            try:
                sock.connect(str(sock_path))
                wire.send(sock, {"op": "hello", "exclusive": exclusive, "protocol": PROTOCOL})
                con = cls(sock, store, cancel_check())
                greeting = con._reply()[0]  # the owner's greeting: it has a cursor for us
                if greeting.get("protocol") != PROTOCOL:
                    sock.close()
                    raise ProtocolMismatch(
                        f"the process owning {store} (pid {greeting.get('pid')}) runs another version of Vigil "
                        f"(store protocol {greeting.get('protocol')}, this one {PROTOCOL}); restart it")
                sock.settimeout(None)  # queries may take as long as they take (Ctrl-C or the cancel check)
                return con
            except (OSError, wire.WireError):
                sock.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 1.6, 1.0)

    # ------------------------------------------------------------------ the connection API

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> RemoteConnection:
        reply = self._call({"op": "execute", "sql": sql, "params": wire.encode_params(params)})[0]
        desc = reply.get("description")
        self.description = [(d[0], d[1]) for d in desc] if desc else None
        return self

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> RemoteConnection:
        self._call({"op": "executemany", "sql": sql, "params": [wire.encode_params(p) for p in params]})
        self.description = None
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._call({"op": "fetch", "kind": "all"})[0]["rows"]
        return [tuple(wire.decode_params(r)) for r in rows]

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._call({"op": "fetch", "kind": "one"})[0]["row"]
        return None if row is None else tuple(wire.decode_params(row))

    def df(self) -> pd.DataFrame:
        return wire.arrow_to_frame(self._call({"op": "fetch", "kind": "df"})[1])

    fetchdf = df

    def register(self, name: str, frame: pd.DataFrame) -> RemoteConnection:
        self._call({"op": "register", "name": name}, wire.frame_to_arrow(frame))
        return self

    def unregister(self, name: str) -> RemoteConnection:
        self._call({"op": "unregister", "name": name})
        return self

    def close(self) -> None:
        self._sock.close()

    # ------------------------------------------------------------------ plumbing

    def _call(self, header: dict[str, Any], payload: bytes = b"") -> tuple[dict[str, Any], bytes]:
        try:
            wire.send(self._sock, header, payload)
        except OSError as exc:
            raise wire.WireError(f"the owner of {self._store} went away ({exc})") from None
        return self._reply()

    def _reply(self) -> tuple[dict[str, Any], bytes]:
        while self._check is not None:  # wait in short slices so that a cancelled page hangs up
            ready, _, _ = select.select([self._sock], [], [], _POLL_S)
            if ready:
                break
            if _holds(self._check):
                self._sock.close()
                raise QueryCancelled("the query was cancelled because the page was left")
        header, payload = wire.recv(self._sock)
        if header.get("ok"):
            return header, payload
        kind, message = str(header.get("type")), str(header.get("message"))
        error = getattr(duckdb, kind, None)
        if isinstance(error, type) and issubclass(error, duckdb.Error):
            raise error(message)
        raise wire.WireError(f"the owner of {self._store} refused a request: {message}")


def _holds(check: CancelCheck) -> bool:
    try:
        return bool(check())
    except Exception:
        return False
