"""Who is using the app: built-in sign-in (users file, Argon2 hashes) or Streamlit's ``st.login`` (OIDC).

OIDC is used when ``.streamlit/secrets.toml`` has an ``[auth]`` section; the signed-in e-mail is mapped
to a role by the users file (a user's ``email``) or by ``[vigil_roles]`` in the secrets. Otherwise the
built-in form checks the users file. The role chooses the pages (``dashboard.ui.nav``); the core checks
it again on every action (``dashboard.access.roles``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from dashboard.access.roles import Actor
from dashboard.access.users import SignInFailed, authenticate, load_users, role_for_email
from dashboard.errors import USER_ERRORS
from dashboard.ui.state import context

_KEY = "user"
MAX_FAILURES = 5  # per browser session, after which the form asks to reload


def _secrets_section(name: str) -> Mapping[str, Any] | None:
    try:
        if name in st.secrets:
            section = st.secrets[name]
            return section if isinstance(section, Mapping) else None
    except Exception:  # no secrets file at all: Streamlit raises rather than returning empty
        return None
    return None


def oidc_configured() -> bool:
    return _secrets_section("auth") is not None


def current_actor() -> Actor | None:
    """The signed-in user as an :class:`Actor` (None while signed out)."""
    user = st.session_state.get(_KEY)
    if not user:
        return None
    return Actor(str(user["name"]), str(user["role"]))


def current_role() -> str | None:
    """The signed-in user's role; shows the sign-in form (and returns None) while signed out."""
    actor = current_actor()
    if actor is None:
        actor = _oidc_sign_in() if oidc_configured() else _builtin_sign_in()
        if actor is None:
            return None
        st.session_state[_KEY] = {"name": actor.name, "role": actor.role}
        st.rerun()  # start over without the sign-in form
    _sidebar(actor)
    return actor.role


def _sidebar(actor: Actor) -> None:
    with st.sidebar:
        st.caption(f"Signed in as **{_md_escape(actor.name)}** ({actor.role.replace('_', ' ')})")
        if st.button("Sign out", key="sign_out"):
            sign_out()


def sign_out() -> None:
    st.session_state.pop(_KEY, None)
    if oidc_configured():
        st.logout()
    st.rerun()


def _md_escape(text: str) -> str:
    """Escape Markdown control characters so a user name renders as text."""
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>~" else c for c in text)


def _builtin_sign_in() -> Actor | None:
    try:
        ctx = context()
        users_file = ctx.settings.users_file
        users = load_users(users_file)
    except USER_ERRORS as exc:
        st.error(str(exc))
        return None
    st.title("Vigil")
    if not users:
        st.info("**No users yet.** Vigil needs at least one account before anyone can sign in. "
                "In a terminal, run:")
        st.code("vigil users add admin --role admin", language="bash")
        st.caption(f"The users file will be {users_file}. For the demo workspace, `vigil demo` creates demo "
                   "accounts (see the README). Reload this page afterwards.")
        return None
    failures = int(st.session_state.get("sign_in_failures", 0))
    with st.form("sign_in", clear_on_submit=False):
        st.subheader("Sign in")
        name = st.text_input("Username", key="sign_in_name")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary", disabled=failures >= MAX_FAILURES)
    if failures >= MAX_FAILURES:
        st.error("Too many failed attempts in this browser session; reload the page to try again.")
        return None
    if not submitted:
        return None
    try:
        actor = authenticate(users_file, name.strip(), password, store=ctx.store)
    except SignInFailed as exc:
        st.session_state["sign_in_failures"] = failures + 1
        st.error(str(exc).capitalize())
        return None
    except USER_ERRORS as exc:
        st.error(str(exc))
        return None
    st.session_state.pop("sign_in_failures", None)
    st.session_state.pop("sign_in_password", None)
    _record_sign_in(actor, "password")
    return actor


def _record_sign_in(actor: Actor, method: str) -> None:
    from dashboard.audit import trail as audit

    try:
        audit.record(context().store, actor, "signin", actor.name, {"method": method})
    except USER_ERRORS as exc:  # a busy store must not lock people out
        st.warning(f"Signed in, but the audit trail could not record it: {exc}")


def _oidc_sign_in() -> Actor | None:
    user = st.user
    if not user.get("is_logged_in", False):
        st.title("Vigil")
        st.write("Sign in with your organisation's account.")
        if st.button("Sign in", type="primary", key="oidc_sign_in"):
            st.login()
        return None
    email = str(user.get("email") or "")
    try:
        role = role_for_email(email, context().settings.users_file, _secrets_section("vigil_roles"))
    except USER_ERRORS as exc:
        st.error(str(exc))
        return None
    if role is None:
        st.title("Vigil")
        st.error(f"{email or 'This account'} has no Vigil role yet. Ask an admin to add it "
                 "(`vigil users add NAME --role ROLE --email ...` or [vigil_roles] in secrets.toml).")
        if st.button("Sign out", key="oidc_sign_out"):
            st.logout()
        return None
    actor = Actor(email, role)
    _record_sign_in(actor, "oidc")
    return actor
