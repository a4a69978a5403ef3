"""Label Studio accounts of Vigil users, so every label is credited to the person who gave it.

Label Studio names an annotation's author by its own user id. When Vigil creates a person's Label
Studio account it records which account belongs to which Vigil user (table ``labelstudio_accounts``, per
Label Studio URL), and label sync maps authors back through that record: the stored ``annotator`` is
the Vigil user name. Only accounts Vigil created are credited to a Vigil user; an account someone made
by hand with a matching e-mail keeps its e-mail as the name (an identity is never self-declared).

Vigil creates an account (see :meth:`LabelStudioClient.create_account` for why through Label Studio's
invitation sign-up) when an annotator is added with ``vigil users add --role annotator`` (same password
in both places), with ``vigil users label-studio-account NAME`` (an admin, later), or when a signed-in
user asks for one on the Annotation queue page. Passwords go to Label Studio only: never stored, logged,
audited or shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from connectors.labelstudio import LabelStudioClient, LabelStudioError
from connectors.logstore import utcnow
from connectors.queries.selection import first
from dashboard.access.roles import Actor, require
from dashboard.access.users import load_users
from dashboard.audit import trail as audit
from dashboard.context import Context
from dashboard.errors import VigilError

EMAIL_DOMAIN = "vigil.local"  # for Vigil users without an e-mail: name@vigil.local
MIN_PASSWORD = 8  # Label Studio's own minimum
DDL = """CREATE TABLE IF NOT EXISTS labelstudio_accounts (
    label_studio_url VARCHAR NOT NULL, vigil_user VARCHAR NOT NULL, ls_user_id BIGINT NOT NULL,
    email VARCHAR NOT NULL, created_by VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (label_studio_url, vigil_user), UNIQUE (label_studio_url, ls_user_id))"""


@dataclass(frozen=True)
class Account:
    """A Vigil user's Label Studio account."""

    user: str
    ls_user_id: int
    email: str


def _ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def account_email(context: Context, user: str) -> str:
    """The e-mail a user signs in to Label Studio with: their Vigil e-mail, else ``name@vigil.local``."""
    found = load_users(context.settings.users_file).get(user)
    if found is not None and found.email:
        return found.email.lower()
    return user.lower() if "@" in user else f"{user.lower()}@{EMAIL_DOMAIN}"


def account_of(context: Context, client: LabelStudioClient, user: str) -> Account | None:
    """The Label Studio account Vigil made for ``user`` on this Label Studio, if any."""
    with context.store.connect() as con:
        _ensure(con)
        row = first(con.execute("SELECT ls_user_id, email FROM labelstudio_accounts WHERE label_studio_url = ? "
                                "AND vigil_user = ?", [client.url, user]).fetchall())
    return None if row is None else Account(user, int(row[0]), str(row[1]))


def author_names(context: Context, client: LabelStudioClient) -> dict[int, str]:
    """Label Studio user id -> the Vigil user name for accounts Vigil made, else the account's e-mail."""
    names = client.users()
    with context.store.connect() as con:
        _ensure(con)
        rows = con.execute("SELECT ls_user_id, vigil_user FROM labelstudio_accounts WHERE label_studio_url = ?",
                           [client.url]).fetchall()
    names.update({int(ls_id): str(user) for ls_id, user in rows})
    return names


def create_account(context: Context, actor: Actor, client: LabelStudioClient, user: str,
                   password: str) -> Account:
    """Create ``user``'s Label Studio account (their own, or anyone's as an admin) and record it.

    Refuses when Label Studio already has an account with that e-mail that Vigil did not make: its labels
    cannot be vouched for as ``user``'s.
    """
    require(actor, "queue.send" if actor.name == user else "users.manage")
    if actor.name != user and user not in load_users(context.settings.users_file):
        raise VigilError(f"no Vigil user {user}; add them first with `vigil users add {user} --role annotator`")
    existing = account_of(context, client, user)
    if existing is not None:
        return existing
    if len(password) < MIN_PASSWORD:
        raise VigilError(f"a Label Studio password needs at least {MIN_PASSWORD} characters")
    email = account_email(context, user)
    if email in {e.lower() for e in client.users().values()}:
        raise VigilError(f"Label Studio already has an account {email} that Vigil did not create, so its labels "
                         f"are not credited to {user}; remove it in Label Studio (Organization page), then try again")
    account = Account(user, client.create_account(email, password), email)
    _record(context, actor, client, account)
    return account


def _record(context: Context, actor: Actor, client: LabelStudioClient, account: Account) -> None:
    """Keep the account's owner (what label sync credits) and put its creation on the audit trail."""
    with context.store.connect() as con:
        _ensure(con)
        con.execute("INSERT INTO labelstudio_accounts VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [client.url, account.user, account.ls_user_id, account.email, actor.name, utcnow()]).fetchall()
    audit.record(context, actor, "labelstudio.account_create", account.user,
                 {"email": account.email, "label_studio_user_id": account.ls_user_id, "label_studio": client.url})


def later(user: str) -> str:
    """How to create ``user``'s Label Studio account once Label Studio can be reached."""
    return (f"create it with `vigil users label-studio-account {user}` (as an admin; it asks for the password), "
            f"or {user} can on the Annotation queue page (\"Create your Label Studio account\")")


def after_user_added(context: Context, actor: Actor, user: str, role: str, password: str) -> str:
    """The `vigil users add` step for an annotator: their Label Studio account, with the same password.

    Returns one line for the terminal (empty for other roles); a Label Studio that is not configured or
    fails does not undo the Vigil user, and the line says how to create the account later.
    """
    if role != "annotator":
        return ""
    url, token = context.settings.label_studio_url, context.settings.label_studio_token
    if not url or not token:
        return (f"No Label Studio account made for {user}: Label Studio is not configured (set "
                f"VIGIL_LABEL_STUDIO_URL and VIGIL_LABEL_STUDIO_TOKEN); once it is, {later(user)}.")
    try:
        account = create_account(context, actor, LabelStudioClient(url, token), user, password)
    except (LabelStudioError, VigilError) as exc:
        return (f"No Label Studio account made for {user} (the Vigil user is added): {exc}. When that is "
                f"fixed, {later(user)}.")
    return f"Label Studio account {account.email} made for {user}: sign in to {url} with it and the same password"
