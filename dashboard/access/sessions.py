"""Signed, expiring sign-in sessions, so a page reload or a typed URL keeps the user signed in.

Why signed and re-checked: the browser holds the session token (a cookie), so it must be unforgeable
(HMAC-SHA256 with a key that never leaves the server: ``VIGIL_SESSION_KEY``, else a key file in the data
folder created with owner-only permissions), short-lived (:data:`SESSION_HOURS`), and tied to the
account as it is now: the token carries a fingerprint of the password hash (a password change ends
every session), sign-out revokes its nonce in the store, and :func:`revalidate` reads the users file
again on every script run, so removing a user or changing a role takes effect on their next click.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dashboard.access.roles import Actor
from dashboard.access.users import User, current_user

SESSION_HOURS = 12.0
COOKIE = "vigil_session"
KEY_FILE = "session.key"
_DDL = "CREATE TABLE IF NOT EXISTS session_revocations (nonce VARCHAR PRIMARY KEY, expires TIMESTAMP NOT NULL)"


@dataclass(frozen=True)
class Session:
    name: str
    issued: datetime
    expires: datetime
    nonce: str


def session_key(data_dir: Path, environ: dict[str, str] | None = None) -> bytes:
    """The signing key: ``VIGIL_SESSION_KEY``, else ``<data_dir>/session.key`` (created on first use)."""
    env = os.environ if environ is None else environ
    if env.get("VIGIL_SESSION_KEY"):
        return env["VIGIL_SESSION_KEY"].encode("utf-8")
    path = Path(data_dir) / KEY_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip().encode("utf-8")


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode("utf-8")).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode("ascii"), hashlib.sha256).hexdigest()


def issue(key: bytes, user: User, hours: float = SESSION_HOURS, now: datetime | None = None) -> str:
    """A session token for ``user``: ``<payload>.<signature>``, URL- and cookie-safe."""
    now = now or datetime.now(UTC)
    body = {"u": user.name, "iat": int(now.timestamp()), "exp": int((now + timedelta(hours=hours)).timestamp()),
            "pw": _fingerprint(user), "n": secrets.token_hex(8)}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode("utf-8"))
    return f"{payload}.{_sign(key, payload)}"


def decode(key: bytes, token: str, now: datetime | None = None) -> tuple[Session, str] | None:
    """The session and password fingerprint of a well-signed, unexpired token; None otherwise."""
    payload, _, signature = (token or "").strip().partition(".")
    if not payload or not hmac.compare_digest(_sign(key, payload), signature):
        return None
    try:
        body: dict[str, Any] = json.loads(_unb64(payload))
        session = Session(str(body["u"]), datetime.fromtimestamp(int(body["iat"]), UTC),
                          datetime.fromtimestamp(int(body["exp"]), UTC), str(body["n"]))
    except (ValueError, KeyError, TypeError):
        return None
    if session.expires <= (now or datetime.now(UTC)):
        return None
    return session, str(body.get("pw", ""))


def restore(key: bytes, token: str, users_file: Path, store: Any = None) -> Actor | None:
    """The signed-in user a session token stands for, if it is still valid for the account as it is now."""
    decoded = decode(key, token)
    if decoded is None:
        return None
    session, fingerprint = decoded
    user = current_user(users_file, session.name)
    if user is None or not hmac.compare_digest(_fingerprint(user), fingerprint):
        return None
    if store is not None and revoked(store, session.nonce):
        return None
    return user.actor


def revoke(store: Any, key: bytes, token: str) -> None:
    """Sign-out: the token's nonce is refused from now on, even if a copy of the cookie survives."""
    decoded = decode(key, token)
    if decoded is None:
        return
    session = decoded[0]
    with store.connect() as con:
        con.execute(_DDL)
        con.execute("INSERT OR IGNORE INTO session_revocations VALUES (?, ?)",
                    [session.nonce, session.expires.replace(tzinfo=None)])
        con.execute("DELETE FROM session_revocations WHERE expires < ?", [datetime.now(UTC).replace(tzinfo=None)])


def revoked(store: Any, nonce: str) -> bool:
    with store.connect() as con:
        con.execute(_DDL)
        row = con.execute("SELECT count(*) FROM session_revocations WHERE nonce = ?", [nonce]).fetchone()
    return bool(row and row[0])


def revalidate(users_file: Path, actor: Actor) -> Actor | None:
    """The signed-in actor as the users file has them now: None once removed, the new role after a change."""
    user = current_user(users_file, actor.name)
    return None if user is None else user.actor
