"""Sign-in lockout: too many wrong passwords for one account, or from one client address, lock it for a while.

Why in the store and keyed twice: a per-browser counter is reset by a reload, and guessing one account
from many places or many accounts from one place are both attacks. Failures are rows of
``signin_failures`` (key, time), so every app process and the CLI's password prompt share them. After
:data:`MAX_FAILURES` failures within :data:`WINDOW` the key is locked; each further failure doubles the
wait (from :data:`FIRST_LOCK` up to :data:`MAX_LOCK`). A success clears the account's failures only,
so one valid account does not reset an address that is guessing others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)
FIRST_LOCK = timedelta(minutes=1)
MAX_LOCK = timedelta(minutes=60)

_DDL = "CREATE TABLE IF NOT EXISTS signin_failures (key VARCHAR NOT NULL, ts TIMESTAMP NOT NULL)"


@dataclass(frozen=True)
class Lock:
    key: str
    until: datetime

    def message(self, now: datetime) -> str:
        minutes = max(1, round((self.until - now).total_seconds() / 60))
        what = "this account" if self.key.startswith("account:") else "this address"
        return (f"too many failed sign-ins for {what}; try again in {minutes} minute{'s' if minutes != 1 else ''} "
                "(an admin can reset a forgotten password with `vigil users set-password`)")


def keys_for(name: str, address: str | None) -> list[str]:
    return [f"account:{name.strip().lower()[:64]}", f"address:{(address or 'unknown')[:64]}"]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def lock_for(failures: Sequence[datetime], now: datetime) -> datetime | None:
    """When a key with these failure times is unlocked again (None: not locked). Pure, for tests."""
    recent = sorted(t for t in failures if t > now - WINDOW)
    if len(recent) < MAX_FAILURES:
        return None
    wait = min(FIRST_LOCK * (2 ** (len(recent) - MAX_FAILURES)), MAX_LOCK)
    until = recent[-1] + wait
    return until if until > now else None


def check(store: Any, keys: Sequence[str]) -> Lock | None:
    """The lock in force for any of ``keys`` (the longest), or None."""
    now = _now()
    with store.connect() as con:
        con.execute(_DDL)
        rows = con.execute("SELECT key, ts FROM signin_failures WHERE key IN (SELECT unnest(?)) AND ts > ?",
                           [list(keys), now - WINDOW]).fetchall()
    locks = []
    for key in keys:
        until = lock_for([ts for k, ts in rows if k == key], now)
        if until is not None:
            locks.append(Lock(key, until))
    return max(locks, key=lambda lock: lock.until) if locks else None


def record_failure(store: Any, keys: Sequence[str]) -> None:
    now = _now()
    with store.connect() as con:
        con.execute(_DDL)
        con.executemany("INSERT INTO signin_failures VALUES (?, ?)", [[k, now] for k in keys])
        con.execute("DELETE FROM signin_failures WHERE ts < ?", [now - 2 * WINDOW])  # older ones count for nothing


def clear_account(store: Any, name: str) -> None:
    with store.connect() as con:
        con.execute(_DDL)
        con.execute("DELETE FROM signin_failures WHERE key = ?", [keys_for(name, None)[0]])
