"""Alert routes: the outside systems an alert notification is sent to.

* :class:`WebhookRoute` POSTs the notification as JSON, signed like the retrain webhook
  (``X-Vigil-Signature: sha256=<HMAC of timestamp.body>``, ``X-Vigil-Timestamp``; see
  :func:`connectors.triggers.sign`).
* :class:`SlackRoute` POSTs a Slack-compatible incoming-webhook payload (``text`` and ``blocks``), all
  plain text with Slack's control characters escaped, so nothing in an alert can mention a channel or
  smuggle a link.
* :class:`EmailRoute` sends a plain-text email over SMTP, with STARTTLS and login when configured.

Every message carries its stable notification id (JSON ``id``, Slack ``text``, email ``Message-ID``)
so a receiver can drop a copy it already has: a sender that is killed between sending and recording
sends again. Every failure is a :class:`RouteError` naming the fix and the reply the route gave.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from connectors.errors import ConnectorError
from connectors.triggers import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

NOTIFICATION_HEADER = "X-Vigil-Notification"


class RouteError(ConnectorError):
    """A route did not take the notification; ``response`` is what it answered (HTTP status, SMTP reply)."""

    def __init__(self, message: str, response: str = "") -> None:
        super().__init__(message)
        self.response = response


@dataclass(frozen=True)
class Message:
    """One notification as every route sends it: a stable id, a subject, a plain-text body, JSON fields."""

    id: str
    subject: str
    text: str
    payload: Mapping[str, Any] = field(default_factory=dict)


class Route(Protocol):
    name: str

    def send(self, message: Message) -> str:
        """Deliver ``message``; return the route's reply (e.g. ``HTTP 200``) or raise :class:`RouteError`."""
        ...


def host_only(url: str) -> str:
    """``https://hooks.slack.com/…``: how a URL whose path is a secret appears in messages and logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def _post_json(route: str, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float,
               shown: str | None = None) -> str:
    """POST ``body``; errors name the route and ``shown`` (the URL as it may appear in the delivery log)."""
    where = shown or url
    try:
        resp = requests.post(url, data=body, headers={"Content-Type": "application/json", **headers},
                             timeout=timeout_s, allow_redirects=False)
    except requests.Timeout:
        raise RouteError(f"route '{route}': {where} did not answer within {timeout_s:g} s; check the receiver or "
                         "raise alerts.timeout_s", "timeout") from None
    except requests.RequestException as exc:
        raise RouteError(f"route '{route}': cannot reach {where} ({type(exc).__name__}); check the URL and that "
                         "the receiver runs", "unreachable") from None
    if resp.status_code >= 300:
        hint = " (the signing secret differs: check the route's secret_env)" if resp.status_code in (401, 403) \
            else ""
        raise RouteError(f"route '{route}': {where} answered HTTP {resp.status_code}{hint}: {resp.text[:200]}",
                         f"HTTP {resp.status_code}")
    return f"HTTP {resp.status_code}"


class WebhookRoute:
    """Signed JSON: ``{"id", "event", "alert": {...}}`` with the HMAC headers of the retrain webhook."""

    def __init__(self, name: str, url: str, secret: str, timeout_s: float = 10.0) -> None:
        if not secret:
            raise RouteError(f"route '{name}': the signing secret is empty; export the variable named by its "
                             "secret_env")
        self.name, self.url, self.secret, self.timeout_s = name, url, secret, timeout_s

    def body(self, message: Message) -> bytes:
        return json.dumps({"id": message.id, "subject": message.subject, **message.payload},
                          sort_keys=True, default=str).encode()

    def send(self, message: Message) -> str:
        body = self.body(message)
        ts = str(int(time.time()))
        headers = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(self.secret, ts, body), NOTIFICATION_HEADER: message.id}
        return _post_json(self.name, self.url, body, headers, self.timeout_s)


def slack_escape(text: str) -> str:
    """Slack's three control characters as entities: no ``<!channel>``, no ``<url|link>`` from data."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackRoute:
    """A Slack-compatible incoming webhook: ``{"text": ..., "blocks": [...]}`` in plain text."""

    def __init__(self, name: str, url: str, timeout_s: float = 10.0) -> None:
        self.name, self.url, self.timeout_s = name, url, timeout_s

    @staticmethod
    def payload(message: Message) -> dict[str, Any]:
        subject, text = slack_escape(message.subject), slack_escape(message.text)
        return {"text": f"{subject}\n{text}",
                "blocks": [{"type": "header", "text": {"type": "plain_text", "text": subject[:150]}},
                           {"type": "section", "text": {"type": "plain_text", "text": text[:3000]}},
                           {"type": "context", "elements": [{"type": "plain_text",
                                                             "text": f"notification {message.id}"}]}]}

    def send(self, message: Message) -> str:
        body = json.dumps(self.payload(message)).encode()
        return _post_json(self.name, self.url, body, {NOTIFICATION_HEADER: message.id}, self.timeout_s,
                          shown=host_only(self.url))  # the path of a Slack webhook URL is its secret


class EmailRoute:
    """Plain-text email over SMTP; STARTTLS (verified against ``ca_file`` or the system CAs) and login."""

    def __init__(self, name: str, host: str, port: int, sender: str, to: Sequence[str], *, starttls: bool = False,
                 username: str | None = None, password: str | None = None, ca_file: str | None = None,
                 timeout_s: float = 10.0) -> None:
        if username and not password:
            raise RouteError(f"route '{name}': SMTP login as {username} needs a password; export the variable "
                             "named by its password_env")
        self.name, self.host, self.port, self.sender, self.to = name, host, port, sender, tuple(to)
        self.starttls, self.username, self.password = starttls, username, password
        self.ca_file, self.timeout_s = ca_file, timeout_s

    def email(self, message: Message) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = message.subject
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = f"<{message.id}@{self.sender.rpartition('@')[2] or 'vigil'}>"
        msg[NOTIFICATION_HEADER] = message.id
        msg.set_content(message.text)  # text/plain only: nothing in an alert is ever HTML
        return msg

    def send(self, message: Message) -> str:
        where = f"{self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
                if self.username:
                    smtp.login(self.username, self.password or "")
                return self._transmit(smtp, self.email(message))
        except RouteError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise RouteError(f"route '{self.name}': {where} refused the login of {self.username}; check the "
                             "username and the variable named by password_env", _reply(exc)) from None
        except smtplib.SMTPNotSupportedError:
            raise RouteError(f"route '{self.name}': {where} does not offer STARTTLS (or login); set "
                             "starttls = false or use the server's submission port", "not supported") from None
        except ssl.SSLError as exc:
            raise RouteError(f"route '{self.name}': the TLS handshake with {where} failed ({exc.reason}); "
                             "set ca_file to the CA that signed the server's certificate", "tls") from None
        except TimeoutError:
            raise RouteError(f"route '{self.name}': {where} did not answer within {self.timeout_s:g} s; check "
                             "the SMTP server or raise alerts.timeout_s", "timeout") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise RouteError(f"route '{self.name}': cannot send through {where} ({type(exc).__name__}: "
                             f"{exc}); check smtp_host and smtp_port", _reply(exc) or "unreachable") from None

    def _transmit(self, smtp: smtplib.SMTP, msg: EmailMessage) -> str:
        """MAIL, RCPT, DATA one by one, so the server's final reply is what the delivery log keeps."""
        smtp.ehlo_or_helo_if_needed()
        code, reply = smtp.mail(self.sender)
        if code != 250:
            raise RouteError(f"route '{self.name}': the server refused the sender {self.sender}: {code} "
                             f"{reply.decode(errors='replace')}; check from", f"{code}")
        accepted = [r for r in self.to if smtp.rcpt(r)[0] in (250, 251)]
        if not accepted:
            smtp.rset()
            raise RouteError(f"route '{self.name}': the server refused every recipient ({', '.join(self.to)}); "
                             "check to", "recipients refused")
        code, reply = smtp.data(msg.as_bytes())
        text = f"{code} {reply.decode(errors='replace')}".strip()
        if code != 250:
            raise RouteError(f"route '{self.name}': the server did not accept the message: {text}", text)
        return text


def _reply(exc: BaseException) -> str:
    code = getattr(exc, "smtp_code", None)
    error = getattr(exc, "smtp_error", b"")
    if code is None:
        return ""
    return f"{code} {error.decode(errors='replace') if isinstance(error, bytes) else error}".strip()
