"""Built-in users: a TOML file of names, roles and Argon2id password hashes (never plaintext).

Why a file: a self-hosted install needs sign-in without an identity provider; the file lives in the
data folder (``settings.users_file``), is written atomically with owner-only permissions, and is
managed with ``vigil users add/remove/set-role/list``. With an identity provider, Streamlit's
``st.login`` (OIDC) is used instead and roles are mapped by e-mail (see :func:`role_for_email`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from dashboard.access.roles import ROLES, Actor, require
from dashboard.errors import PermissionDenied, VigilError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
MIN_PASSWORD_LENGTH = 8
_HASHER = PasswordHasher()  # Argon2id with the library's current defaults
# Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("vigil-no-such-user")

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


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str = ""
    email: str = ""
    created: str = ""

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
        users[str(name)] = User(str(name), str(spec["role"]), str(spec.get("password_hash", "")),
                                str(spec.get("email", "")), str(spec.get("created", "")))
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
    users[name] = User(old.name, role, old.password_hash, old.email, old.created)
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
    users[name] = User(old.name, old.role, hash_password(password), old.email, old.created)
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


def authenticate(path: Path, name: str, password: str, store: Any = None) -> Actor:
    """The Actor for a correct name and password; otherwise :class:`SignInFailed` (and an audit entry)."""
    user = load_users(path).get(name)
    ok = False
    try:
        ok = _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        _audit(store, name[:64] or "-", "signin.failed", name[:64], {"reason": "wrong name or password"})
        raise SignInFailed("wrong user name or password")
    if _HASHER.check_needs_rehash(user.password_hash):
        users = load_users(path)
        users[name] = User(user.name, user.role, _HASHER.hash(password), user.email, user.created)
        save_users(path, users)
    return user.actor


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
