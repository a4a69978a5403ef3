"""Built-in users: a TOML file of names, roles, Argon2id password hashes and API-token hashes.

Why a file: a self-hosted install needs sign-in without an identity provider; the file lives in the
data folder (``settings.users_file``), is written atomically with owner-only permissions, and is
managed with ``vigil users add/remove/set-role/list/token``. With an identity provider, Streamlit's
``st.login`` (OIDC) is used instead and roles are mapped by e-mail (see :func:`role_for_email`).
API tokens (``vgl_<id>_<secret>``) let the CLI act as a user: only a SHA-256 of the secret is kept (the
secret is 256 random bits, so a fast hash is enough), and removing the user removes its tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from dashboard.access import lockout
from dashboard.access.roles import ROLES, Actor, require
from dashboard.errors import PermissionDenied, VigilError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
MIN_PASSWORD_LENGTH = 8
_HASHER = PasswordHasher()  # Argon2id with the library's current defaults


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so a wrong name takes as long as a wrong
    password; made on first sign-in, not at import (Argon2id costs half a second on every CLI start)."""
    return _HASHER.hash("vigil-no-such-user")


# Demo accounts created by `vigil demo` (documented in the README; change them for anything real).
DEMO_USERS: dict[str, tuple[str, str]] = {
    "scientist": ("data_scientist", "scientist-demo"),
    "annotator": ("annotator", "annotator-demo"),
    "manager": ("manager", "manager-demo"),
    "admin": ("admin", "admin-demo"),
}


class UserError(VigilError):
    """A bad user-management request (unknown user, weak password, bad role)."""


class SignInFailed(VigilError):
    """Wrong name or password (deliberately not saying which)."""


TOKEN_PREFIX = "vgl_"
TOKEN_PATTERN = re.compile(r"^vgl_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class ApiToken:
    """A stored API token: its id (shown, used to revoke), the hash of its secret, and when it expires."""

    id: str
    secret_hash: str
    created: str
    expires: str = ""  # ISO time, empty = never
    label: str = ""

    def expired(self, now: datetime) -> bool:
        return bool(self.expires) and datetime.fromisoformat(self.expires) <= now


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str = ""
    email: str = ""
    created: str = ""
    tokens: tuple[ApiToken, ...] = field(default=(), repr=False)

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.role)


# ------------------------------------------------------------------------------------------ file I/O


def load_users(path: Path) -> dict[str, User]:
    """The users in ``path`` (empty when the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"the users file {path} is not valid TOML ({exc}); fix or remove it") from None
    users: dict[str, User] = {}
    for name, spec in (raw.get("users") or {}).items():
        if not isinstance(spec, Mapping) or spec.get("role") not in ROLES:
            raise UserError(f"the users file {path}: users.{name} needs a role, one of {', '.join(ROLES)}")
        tokens = tuple(ApiToken(str(tid), str(tok.get("hash", "")), str(tok.get("created", "")),
                                str(tok.get("expires", "")), str(tok.get("label", "")))
                       for tid, tok in (spec.get("tokens") or {}).items() if isinstance(tok, Mapping))
        users[str(name)] = User(str(name), str(spec["role"]), str(spec.get("password_hash", "")),
                                str(spec.get("email", "")), str(spec.get("created", "")), tokens)
    return users


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=True)  # a JSON string with ASCII escapes is a TOML basic string


def save_users(path: Path, users: Mapping[str, User]) -> None:
    """Write atomically (temp file + rename) with mode 0600: the hashes are still secrets."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Vigil users: managed with `vigil users ...`. Passwords are Argon2id hashes, never plaintext.", ""]
    for user in sorted(users.values(), key=lambda u: u.name):
        lines += [f"[users.{_toml_str(user.name)}]", f"role = {_toml_str(user.role)}",
                  f"password_hash = {_toml_str(user.password_hash)}"]
        if user.email:
            lines.append(f"email = {_toml_str(user.email)}")
        if user.created:
            lines.append(f"created = {_toml_str(user.created)}")
        lines.append("")
        for tok in user.tokens:
            lines += [f"[users.{_toml_str(user.name)}.tokens.{_toml_str(tok.id)}]", f"hash = {_toml_str(tok.secret_hash)}",
                      f"created = {_toml_str(tok.created)}", f"expires = {_toml_str(tok.expires)}",
                      f"label = {_toml_str(tok.label)}", ""]
    fd, tmp = tempfile.mkstemp(prefix=".users-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------- management


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


def _check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise UserError(f"'{name}' is not a valid user name: start with a letter or digit, then letters, digits, "
                        "'.', '_', '-' or '@' (max 64)")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"'{role}' is not a role; roles are {', '.join(ROLES)}")


def _audit(store: Any, actor: Actor | str, action: str, target: str, details: dict[str, Any]) -> None:
    if store is not None:
        from dashboard.audit import trail as audit

        audit.record(store, actor, action, target, details)


def add_user(path: Path, actor: Actor, name: str, role: str, password: str, email: str = "",
             store: Any = None) -> User:
    """Create a user (admin only); refuses an existing name."""
    require(actor, "users.manage")
    _check_name(name)
    _check_role(role)
    users = load_users(path)
    if name in users:
        raise UserError(f"user '{name}' already exists; use `vigil users set-role` or remove it first")
    user = User(name, role, hash_password(password), email, datetime.now(UTC).isoformat(timespec="seconds"))
    users[name] = user
    save_users(path, users)
    _audit(store, actor, "users.add", name, {"role": role, "email": email})
    return user


def remove_user(path: Path, actor: Actor, name: str, store: Any = None) -> None:
    require(actor, "users.manage")
    users = load_users(path)
    if name not in users:
        raise UserError(f"no user '{name}' in {path}")
    del users[name]
    save_users(path, users)
    _audit(store, actor, "users.remove", name, {})


def set_role(path: Path, actor: Actor, name: str, role: str, store: Any = None) -> User:
    require(actor, "users.manage")
    _check_role(role)
    users = load_users(path)
    if name not in users:
        raise UserError(f"no user '{name}' in {path}")
    old = users[name]
    users[name] = replace(old, role=role)
    save_users(path, users)
    _audit(store, actor, "users.set_role", name, {"from": old.role, "to": role})
    return users[name]


def set_password(path: Path, actor: Actor, name: str, password: str, store: Any = None) -> None:
    """Admins reset anyone's password; a user may change their own."""
    if actor.name != name:
        require(actor, "users.manage")
    users = load_users(path)
    if name not in users:
        raise UserError(f"no user '{name}' in {path}")
    old = users[name]
    users[name] = replace(old, password_hash=hash_password(password))
    save_users(path, users)
    _audit(store, actor, "users.set_password", name, {})


def ensure_demo_users(path: Path) -> list[str]:
    """Create the demo accounts that are missing (see :data:`DEMO_USERS`); returns the names created."""
    users = load_users(path)
    created = []
    for name, (role, password) in DEMO_USERS.items():
        if name not in users:
            users[name] = User(name, role, _HASHER.hash(password), "", datetime.now(UTC).isoformat(timespec="seconds"))
            created.append(name)
    if created:
        save_users(path, users)
    return created


# ------------------------------------------------------------------------------------------ sign-in


def authenticate(path: Path, name: str, password: str, store: Any = None, address: str | None = None) -> Actor:
    """The Actor for a correct name and password; otherwise :class:`SignInFailed` and an audit entry.

    With a store, failures count per account and per client ``address`` (:mod:`dashboard.access.lockout`):
    a locked account or address is refused before the password is even checked.
    """
    keys = lockout.keys_for(name, address)
    if store is not None:
        lock = lockout.check(store, keys)
        if lock is not None:
            _audit(store, name[:64] or "-", "signin.locked", name[:64], {"key": lock.key,
                                                                       "until": lock.until.isoformat()})
            raise SignInFailed(lock.message(datetime.now(UTC).replace(tzinfo=None)))
    user = load_users(path).get(name)
    ok = False
    try:
        ok = _HASHER.verify(user.password_hash if user else _dummy_hash(), password) and user is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        if store is not None:
            lockout.record_failure(store, keys)
        _audit(store, name[:64] or "-", "signin.failed", name[:64], {"reason": "wrong name or password",
                                                                     "address": address or "unknown"})
        raise SignInFailed("wrong user name or password")
    if store is not None:
        lockout.clear_account(store, name)
    if _HASHER.check_needs_rehash(user.password_hash):
        users = load_users(path)
        users[name] = replace(user, password_hash=_HASHER.hash(password))
        save_users(path, users)
    return user.actor


def current_user(path: Path, name: str) -> User | None:
    """The user as the users file has it now (None once removed): sessions re-check it on every action."""
    return load_users(path).get(name)


# ------------------------------------------------------------------------------------------ API tokens


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(path: Path, actor: Actor, name: str, label: str = "", expires_days: float | None = None,
                 store: Any = None) -> tuple[str, ApiToken]:
    """A new API token for ``name`` (an admin's action, or a user's for themselves). Returns the token
    text, shown once, and its stored record (which holds only a hash of it)."""
    if actor.name != name:
        require(actor, "users.manage")
    users = load_users(path)
    if name not in users:
        raise UserError(f"no user '{name}' in {path}")
    if expires_days is not None and expires_days <= 0:
        raise UserError("--expires-days must be positive")
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    record = ApiToken(token_id, _secret_hash(secret), now.isoformat(timespec="seconds"),
                      (now + timedelta(days=expires_days)).isoformat(timespec="seconds") if expires_days else "",
                      label[:200])
    users[name] = replace(users[name], tokens=(*users[name].tokens, record))
    save_users(path, users)
    _audit(store, actor, "users.token_create", name, {"token_id": token_id, "label": record.label,
                                                      "expires": record.expires})
    return f"{TOKEN_PREFIX}{token_id}_{secret}", record


def revoke_token(path: Path, actor: Actor, token_id: str, store: Any = None) -> str:
    """Revoke a token by id (its owner or an admin); returns the owner's name."""
    users = load_users(path)
    owner = next((u for u in users.values() if any(t.id == token_id for t in u.tokens)), None)
    if owner is None:
        raise UserError(f"no API token with id '{token_id}'; `vigil users token list` shows them")
    if actor.name != owner.name:
        require(actor, "users.manage")
    users[owner.name] = replace(owner, tokens=tuple(t for t in owner.tokens if t.id != token_id))
    save_users(path, users)
    _audit(store, actor, "users.token_revoke", owner.name, {"token_id": token_id})
    return owner.name


def actor_for_token(path: Path, token: str) -> Actor:
    """The user an API token belongs to, with the role the users file gives them now."""
    match = TOKEN_PATTERN.match(token.strip())
    if not match:
        raise SignInFailed("VIGIL_TOKEN is not a Vigil API token (they look like vgl_<id>_<secret>); create one "
                           "with `vigil users token create NAME`")
    token_id, secret = match.groups()
    now = datetime.now(UTC)
    for user in load_users(path).values():
        for tok in user.tokens:
            if tok.id == token_id and hmac.compare_digest(tok.secret_hash, _secret_hash(secret)):
                if tok.expired(now):
                    raise SignInFailed(f"the API token {token_id} of {user.name} expired at {tok.expires}; "
                                       "create a new one with `vigil users token create`")
                return user.actor
    raise SignInFailed(f"the API token {token_id} is unknown or revoked; create a new one with "
                       "`vigil users token create NAME`")


def role_for_email(email: str, users_path: Path, mapping: Mapping[str, Any] | None = None) -> str | None:
    """Role of an OIDC-signed-in e-mail: a user in the users file with that e-mail, else ``mapping``.

    ``mapping`` comes from ``[vigil_roles]`` in ``.streamlit/secrets.toml``: ``"alice@example.com" =
    "manager"``; a key ``"*@example.com"`` gives everyone at that domain a role. None means no access.
    """
    email_l = email.strip().lower()
    if not email_l:
        return None
    for user in load_users(users_path).values():
        if user.email and user.email.strip().lower() == email_l:
            return user.role
    mapping = {str(k).lower(): str(v) for k, v in (mapping or {}).items()}
    role = mapping.get(email_l) or mapping.get("*@" + email_l.rpartition("@")[2])
    if role is None:
        return None
    if role not in ROLES:
        raise PermissionDenied(f"vigil_roles maps {email} to '{role}', which is not a role ({', '.join(ROLES)})")
    return role
