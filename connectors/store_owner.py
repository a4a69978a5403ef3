"""One process owns the DuckDB file; every other process queries through it over a local socket.

Why: DuckDB lets one process at a time open a file read-write. If every process opened the file for
itself, a long page computation would hold it and a cron ``vigil ingest`` would wait (and fail after
the lock timeout). Inside one process DuckDB has no such limit: reads run on a snapshot (MVCC) while
appends commit beside them. So the long-running process (the app's server, ``vigil serve``) *owns* the
file: its own threads get a cursor each (no process-wide lock, so one user's long query does not queue
another's cheap one), and short-lived processes (the CLI, jobs) send their SQL to it over a Unix socket
(:mod:`connectors.store_client`). The socket lives in a folder of the user's own (mode 0700) and is
created mode 0600: only the file's own user, who could open the DuckDB file anyway, can connect.

The owner opens the database lazily and closes it after ``idle_close_s`` without work, so an idle store
is checkpointed and a copy of the file is whole. Ownership is an exclusive ``flock`` on
``<store>.owner.lock`` held for the process's life: the OS releases it when the process dies, so a
crashed owner never blocks anyone, and a stale socket file is simply replaced.

Cancellation: a cursor can carry a predicate ("has the user left the page?"); a watchdog thread checks
the predicates of running cursors and the sockets of busy clients every 0.2 s and interrupts the query
of one whose predicate holds or whose client hung up.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import logging
import os
import select
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from connectors import store_wire as wire

log = logging.getLogger(__name__)

CancelCheck = Callable[[], bool]
_WATCH_INTERVAL_S = 0.2
#: Version of the request format; a client of another version is told to restart one side.
PROTOCOL = 1
_local = threading.local()


def set_cancel_check(check: CancelCheck | None) -> None:
    """Queries started by this thread from now on are interrupted once ``check()`` returns True."""
    _local.cancel_check = check


def cancel_check() -> CancelCheck | None:
    return getattr(_local, "cancel_check", None)


class QueryCancelled(Exception):
    """The query was interrupted because the one who asked for it went away."""


def owner_lock_path(store: Path) -> Path:
    return store.with_name(store.name + ".owner.lock")


def socket_path(store: Path) -> Path:
    """Where the owner of ``store`` listens: a private folder of this user, not beside the file (a socket
    there would break copies and backups of the data folder, and a long path would not fit AF_UNIX)."""
    folder = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"vigil-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        raise PermissionError(f"{folder} must belong to this user with mode 0700; remove it and retry")
    return folder / (hashlib.sha256(str(store.resolve()).encode()).hexdigest()[:32] + ".sock")


@dataclass(frozen=True)
class OwnerInfo:
    """Who owns a store and where it listens (read from its lock file, so clients never guess)."""

    pid: int
    socket: Path | None


def owner_info(store: Path) -> OwnerInfo | None:
    """The process that owns ``store`` right now, or None when nobody does."""
    path = owner_lock_path(store)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
                return OwnerInfo(int(data["pid"]), Path(data["socket"]))
            except (ValueError, KeyError, TypeError):  # an owner still writing its lock file
                return OwnerInfo(-1, None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def owner_pid(store: Path) -> int | None:
    info = owner_info(store)
    return None if info is None else info.pid


class _Watchdog:
    """Interrupts queries whose cancel predicate holds or whose remote client hung up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: dict[int, tuple[duckdb.DuckDBPyConnection, CancelCheck]] = {}
        self._clients: dict[int, tuple[duckdb.DuckDBPyConnection, socket.socket]] = {}
        self._thread: threading.Thread | None = None

    def watch_check(self, cur: duckdb.DuckDBPyConnection, check: CancelCheck) -> int:
        return self._add(self._checks, (cur, check))

    def watch_client(self, cur: duckdb.DuckDBPyConnection, conn: socket.socket) -> int:
        return self._add(self._clients, (cur, conn))

    def unwatch(self, token: int) -> None:
        with self._lock:
            self._checks.pop(token, None)
            self._clients.pop(token, None)

    def _add(self, into: dict[int, Any], item: Any) -> int:
        with self._lock:
            token = id(item)
            into[token] = item
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="vigil-store-watchdog", daemon=True)
                self._thread.start()
            return token

    def _run(self) -> None:
        while True:
            time.sleep(_WATCH_INTERVAL_S)
            with self._lock:
                checks = list(self._checks.items())
                clients = list(self._clients.items())
            for token, (cur, check) in checks:
                try:
                    stop = check()
                except Exception:  # a predicate that fails never cancels anything
                    stop = False
                if stop:
                    self._interrupt(token, cur)
            if clients:
                socks = {conn.fileno(): (token, cur, conn) for token, (cur, conn) in clients if conn.fileno() >= 0}
                with suppress(OSError, ValueError):
                    readable, _, _ = select.select(list(socks), [], [], 0)
                    for fd in readable:
                        token, cur, conn = socks[fd]
                        with suppress(OSError):
                            if conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                                self._interrupt(token, cur)

    def _interrupt(self, token: int, cur: duckdb.DuckDBPyConnection) -> None:
        self.unwatch(token)
        with suppress(duckdb.Error):
            cur.interrupt()


WATCHDOG = _Watchdog()


@contextmanager
def cancellable(cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Interrupt ``cur``'s query when this thread's cancel predicate turns true."""
    check = cancel_check()
    if check is None:
        yield
        return
    token = WATCHDOG.watch_check(cur, check)
    try:
        yield
    except duckdb.InterruptException:
        raise QueryCancelled("the query was cancelled because the page was left") from None
    finally:
        WATCHDOG.unwatch(token)


class StoreOwner:
    """The database of one store file, owned by this process, lent out as cursors and over a socket."""

    def __init__(self, store: Path, open_db: Callable[[], duckdb.DuckDBPyConnection], lock_fd: int,
                 idle_close_s: float) -> None:
        self.store = store
        self._open_db = open_db
        self._lock_fd = lock_fd
        self.idle_close_s = idle_close_s
        self._db: duckdb.DuckDBPyConnection | None = None
        self._active = 0
        self._last_used = time.monotonic()
        self._lock = threading.Lock()
        self._writer = threading.RLock()  # serialises check-then-write operations (see ``cursor``)
        self._stopped = threading.Event()
        self.socket_path = socket_path(store)
        self._server: socket.socket | None = None
        self.requests_running = 0  # other processes' requests executing right now
        self._clients: set[tuple[socket.socket, duckdb.DuckDBPyConnection]] = set()

    @classmethod
    def claim(cls, store: Path, open_db: Callable[[], duckdb.DuckDBPyConnection],
              idle_close_s: float = 5.0) -> StoreOwner | None:
        """Own ``store`` (and start serving other processes), or None when another process owns it."""
        path = owner_lock_path(store)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        owner = cls(store, open_db, fd, idle_close_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "socket": str(owner.socket_path),
                                  "protocol": PROTOCOL}).encode("utf-8"), 0)
        owner._listen()
        threading.Thread(target=owner._close_when_idle, name="vigil-store-idle", daemon=True).start()
        atexit.register(owner.stop)  # never leave DuckDB work on daemon threads to the interpreter's teardown
        return owner

    # ------------------------------------------------------------------ this process's cursors

    @contextmanager
    def cursor(self, exclusive: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for the calling thread (DuckDB's rule: one cursor per thread).

        ``exclusive`` cursors are lent one at a time: an operation that checks then writes (an ingest
        looks up the manifest and the stored ids, then inserts) must not interleave with another such
        operation, as it could not when every process took the whole file. Readers never wait for it.
        """
        if self._stopped.is_set():
            raise wire.WireError(f"the owner of {self.store} has stopped")
        if exclusive:
            with self._writer, self.cursor() as cur:
                yield cur
            return
        with self._lock:
            if self._db is None:
                self._db = self._open_db()
            self._active += 1
            try:
                cur = self._db.cursor()
            except BaseException:
                self._active -= 1
                raise
        try:
            yield cur
        finally:
            with suppress(duckdb.Error):
                cur.close()
            with self._lock:
                self._active -= 1
                self._last_used = time.monotonic()

    def _close_when_idle(self) -> None:
        while not self._stopped.wait(min(1.0, max(self.idle_close_s / 2, 0.05))):
            if not self.socket_path.exists():  # removed by a temp-file cleaner: listen again
                self._relisten()
            with self._lock:
                if self._db is not None and self._active == 0 \
                        and time.monotonic() - self._last_used >= self.idle_close_s:
                    self._db.close()
                    self._db = None

    # ------------------------------------------------------------------ other processes

    def _listen(self) -> None:
        with suppress(FileNotFoundError):
            self.socket_path.unlink()  # left by an owner that died; the flock proves it is gone
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            server.bind(str(self.socket_path))
        finally:
            os.umask(old)
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, name="vigil-store-owner", daemon=True).start()

    def _relisten(self) -> None:
        old = self._server
        with suppress(OSError):
            self._listen()
        if old is not None and old is not self._server:
            with suppress(OSError):
                old.close()

    def _accept(self) -> None:
        server = self._server
        assert server is not None
        while not self._stopped.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_client, args=(conn,), name="vigil-store-client",
                             daemon=True).start()

    def _serve_client(self, conn: socket.socket) -> None:
        """One client connection = one cursor, for as long as the client keeps the connection."""
        registered: dict[str, Any] = {}
        try:
            with conn:
                hello, _ = wire.recv(conn)
                with self.cursor(exclusive=bool(hello.get("exclusive"))) as cur:
                    with self._lock:
                        self._clients.add((conn, cur))
                    try:
                        wire.send(conn, {"ok": True, "pid": os.getpid(), "protocol": PROTOCOL})
                        self._requests(conn, cur, registered)
                    finally:
                        with self._lock:
                            self._clients.discard((conn, cur))
        except (OSError, wire.WireError) as exc:
            log.debug("store client went away: %s", exc)
        except Exception:
            log.exception("store owner failed serving a client")

    def _requests(self, conn: socket.socket, cur: duckdb.DuckDBPyConnection, registered: dict[str, Any]) -> None:
        """Answer one client's requests until it hangs up."""
        while True:
            try:
                header, payload = wire.recv(conn)
            except (wire.WireError, OSError):
                return
            token = WATCHDOG.watch_client(cur, conn)
            with self._lock:
                self.requests_running += 1
            try:
                reply, out = _dispatch(cur, header, payload, registered)
            finally:
                WATCHDOG.unwatch(token)
                with self._lock:
                    self.requests_running -= 1
            wire.send(conn, reply, out)

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop serving and release the file (the next process to come may own it): clients are hung up
        on, running queries interrupted, and the file closed once their cursors are back."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._server is not None:
            with suppress(OSError):
                self._server.close()
            with suppress(FileNotFoundError):
                self.socket_path.unlink()
        with self._lock:
            clients = list(self._clients)
        for conn, cur in clients:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with suppress(duckdb.Error):
                cur.interrupt()
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._active == 0:
                    break
            time.sleep(0.05)
        with self._lock:
            if self._db is not None and self._active == 0:
                self._db.close()
                self._db = None
        with suppress(OSError):
            os.close(self._lock_fd)


def _dispatch(cur: duckdb.DuckDBPyConnection, header: dict[str, Any], payload: bytes,
              registered: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """Run one request on ``cur``: (reply header, reply payload). DuckDB errors travel by class name."""
    op = header.get("op")
    try:
        if op == "execute":
            cur.execute(header["sql"], wire.decode_params(header.get("params")))
            desc = cur.description
            return {"ok": True, "description": [[d[0], str(d[1])] for d in desc] if desc else None}, b""
        if op == "executemany":
            cur.executemany(header["sql"], [wire.decode_params(p) for p in header["params"]])
            return {"ok": True, "description": None}, b""
        if op == "fetch":
            kind = header.get("kind")
            if kind == "df":
                return {"ok": True}, wire.frame_to_arrow(cur.df())
            if kind == "all":
                return {"ok": True, "rows": [wire.encode_params(r) for r in cur.fetchall()]}, b""
            if kind == "one":
                row = cur.fetchone()
                return {"ok": True, "row": None if row is None else wire.encode_params(row)}, b""
        if op == "register":
            frame = wire.arrow_to_frame(payload)
            registered[header["name"]] = frame
            cur.register(header["name"], frame)
            return {"ok": True}, b""
        if op == "unregister":
            cur.unregister(header["name"])
            registered.pop(header["name"], None)
            return {"ok": True}, b""
    except duckdb.Error as exc:
        return {"ok": False, "type": type(exc).__name__, "message": str(exc)}, b""
    except (KeyError, TypeError, ValueError, wire.WireError) as exc:
        return {"ok": False, "type": "ProtocolError", "message": f"{type(exc).__name__}: {exc}"}, b""
    return {"ok": False, "type": "ProtocolError", "message": f"unknown request {op!r}"}, b""
