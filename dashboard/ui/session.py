"""Who is using the app: built-in sign-in (users file, Argon2 hashes) or Streamlit's ``st.login`` (OIDC).

OIDC is used when ``.streamlit/secrets.toml`` has an ``[auth]`` section; the signed-in e-mail is mapped
to a role by the users file (a user's ``email``) or by ``[vigil_roles]`` in the secrets. Otherwise the
built-in form checks the users file (with a lockout per account and per client address). The role
chooses the pages (``dashboard.ui.nav``); the core checks it again on every action
(``dashboard.access.roles``). Every script run (every click) re-reads the account, so a removed user is
signed out and a changed role applies at once. A signed session cookie
(:mod:`dashboard.access.sessions`) keeps the sign-in across reloads and typed URLs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

import streamlit as st

from dashboard.access import sessions
from dashboard.access.roles import Actor
from dashboard.access.users import SignInFailed, authenticate, current_user, load_users, role_for_email
from dashboard.errors import USER_ERRORS
from dashboard.ui.format import md_prose, md_text
from dashboard.ui.state import context

_KEY = "user"
_COOKIE_PENDING = "session_cookie_pending"  # ("set", token) or ("clear", "") for the next script run


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
    """The signed-in user as an :class:`Actor`, as the users file (or the OIDC role map) has them now;
    None while signed out, and after the account was removed (which signs the session out)."""
    user = st.session_state.get(_KEY)
    if not user:
        return None
    actor = Actor(str(user["name"]), str(user["role"]))
    try:
        now = _oidc_role(actor.name) if user.get("method") == "oidc" else sessions.revalidate(
            context().settings.users_file, actor)
    except USER_ERRORS as exc:
        st.error(f"Your account could not be checked, so nothing can be changed now: {md_prose(exc)}")
        return None
    if now is None:
        _end_session()
        st.warning(f"The account {md_text(actor.name)} no longer exists or has no role: you were signed out.")
        return None
    if now.role != actor.role:
        st.session_state[_KEY] = {**user, "role": now.role}
        st.info(f"Your role changed to {now.role.replace('_', ' ')}.")
    return now


def current_role() -> str | None:
    """The signed-in user's role; shows the sign-in form (and returns None) while signed out."""
    _apply_pending_cookie()
    actor = current_actor()
    if actor is None and _KEY not in st.session_state:
        actor = _restore_from_cookie()
    if actor is None:
        actor = _oidc_sign_in() if oidc_configured() else _builtin_sign_in()
        if actor is None:
            return None
        st.rerun()  # start over without the sign-in form
    _sidebar(actor)
    return actor.role


def _session_key() -> bytes:
    return sessions.session_key(context().settings.data_dir)


def _start_session(actor: Actor, method: str) -> None:
    st.session_state[_KEY] = {"name": actor.name, "role": actor.role, "method": method}
    if method == "password":
        user = current_user(context().settings.users_file, actor.name)
        if user is not None:
            token = sessions.issue(_session_key(), user)
            st.session_state["session_token"] = token
            st.session_state[_COOKIE_PENDING] = ("set", token)


def _end_session() -> None:
    token = st.session_state.pop("session_token", None) or _cookie()
    st.session_state.pop(_KEY, None)
    if token:
        # If the store is busy the cookie is still cleared below, and the token expires on its own.
        with contextlib.suppress(*USER_ERRORS):
            sessions.revoke(context().store, _session_key(), token)
    st.session_state[_COOKIE_PENDING] = ("clear", "")
    st.session_state["signed_out"] = True  # a cookie sent before sign-out must not sign back in


def _cookie() -> str | None:
    """The session cookie the browser sent with this page load (only a real string counts)."""
    value = st.context.cookies.get(sessions.COOKIE)
    return value if isinstance(value, str) and value else None


def _client_address() -> str | None:
    value = st.context.ip_address
    return value if isinstance(value, str) and value else None


def _restore_from_cookie() -> Actor | None:
    """Sign in again from the session cookie of an earlier page load (a reload, a typed URL)."""
    token = _cookie()
    if not token or st.session_state.get("signed_out"):
        return None
    try:
        settings = context().settings
        actor = sessions.restore(_session_key(), token, settings.users_file, context().store)
    except USER_ERRORS:
        return None
    if actor is not None:
        st.session_state[_KEY] = {"name": actor.name, "role": actor.role, "method": "password"}
        st.session_state["session_token"] = token
    return actor


def _apply_pending_cookie() -> None:
    """Set or clear the session cookie in the browser (a zero-height iframe on the app's own origin)."""
    pending = st.session_state.pop(_COOKIE_PENDING, None)
    if not pending:
        return
    action, token = pending
    max_age = int(sessions.SESSION_HOURS * 3600) if action == "set" else 0
    value = json.dumps(f"{sessions.COOKIE}={token}; Path=/; Max-Age={max_age}; SameSite=Strict")
    st.iframe("<script>const c = " + value + " + (window.parent.location.protocol === 'https:' ? "
              "'; Secure' : ''); window.parent.document.cookie = c;</script>", height=1)  # st.iframe: >= 1 px


def _sidebar(actor: Actor) -> None:
    with st.sidebar:
        st.caption(f"Signed in as **{_md_escape(actor.name)}** ({actor.role.replace('_', ' ')})")
        if st.button("Sign out", key="sign_out"):
            sign_out()


def sign_out() -> None:
    _end_session()
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
        st.error(md_prose(exc))
        return None
    st.title("Vigil")
    if not users:
        st.info("**No users yet.** Vigil needs at least one account before anyone can sign in. "
                "In a terminal, run:")
        st.code("vigil users add admin --role admin", language="bash")
        st.caption(f"The users file will be {users_file}. For the demo workspace, `vigil demo` creates demo "
                   "accounts (see the README). Reload this page afterwards.")
        return None
    with st.form("sign_in", clear_on_submit=False):
        st.subheader("Sign in")
        name = st.text_input("Username", key="sign_in_name")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return None
    try:
        actor = authenticate(users_file, name.strip(), password, store=ctx.store, address=_client_address())
    except SignInFailed as exc:
        st.error(md_prose(str(exc)[:1].upper() + str(exc)[1:]))
        return None
    except USER_ERRORS as exc:
        st.error(md_prose(exc))
        return None
    st.session_state.pop("sign_in_password", None)
    st.session_state.pop("signed_out", None)
    _start_session(actor, "password")
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
        found = _oidc_role(email)
    except USER_ERRORS as exc:
        st.error(md_prose(exc))
        return None
    role = found.role if found else None
    if role is None:
        st.title("Vigil")
        st.error(f"{email or 'This account'} has no Vigil role yet. Ask an admin to add it "
                 "(`vigil users add NAME --role ROLE --email ...` or [vigil_roles] in secrets.toml).")
        if st.button("Sign out", key="oidc_sign_out"):
            st.logout()
        return None
    actor = Actor(email, role)
    _start_session(actor, "oidc")
    _record_sign_in(actor, "oidc")
    return actor


def _oidc_role(email: str) -> Actor | None:
    """The role an OIDC e-mail has now (users file or [vigil_roles]); None when it has none."""
    role = role_for_email(email, context().settings.users_file, _secrets_section("vigil_roles"))
    return Actor(email, role) if role else None
