"""Alert routes against real receivers: a local HTTP server (webhook, Slack) and aiosmtpd (email)."""

from __future__ import annotations

import json

import pytest

from connectors.errors import ConnectorError
from connectors.routes import EmailRoute, Message, RouteError, SlackRoute, WebhookRoute, slack_escape
from connectors.triggers import SIGNATURE_HEADER, TIMESTAMP_HEADER
from tests.fixtures.alerting import SMTP_PASSWORD, SMTP_USER, closed_port_url

SECRET = "route-secret-1"
MESSAGE = Message(id="vigil-alert-7-opened-1", subject="[Vigil] OPEN blocking credit-risk v3: policy drift_share",
                  text="drift share 0.41 <!channel> <https://evil.example|click> & more\n<b>not html</b>",
                  payload={"event": "opened", "alert": {"id": 7, "model": "credit-risk"}})


def test_webhook_is_signed_like_the_retrain_webhook_and_a_real_receiver_verifies_it(http_receiver):
    receiver = http_receiver(SECRET)
    assert WebhookRoute("hook", receiver.url, SECRET).send(MESSAGE) == "HTTP 200"
    (req,) = receiver.requests
    assert req["code"] == 200  # the receiver checked sha256=HMAC(timestamp.body)
    assert req["headers"][SIGNATURE_HEADER].startswith("sha256=") and req["headers"][TIMESTAMP_HEADER].isdigit()
    body = json.loads(req["body"])
    assert body["id"] == MESSAGE.id and body["event"] == "opened" and body["alert"]["model"] == "credit-risk"


def test_webhook_with_the_wrong_secret_names_the_setting(http_receiver):
    receiver = http_receiver(SECRET)
    with pytest.raises(RouteError, match=r"HTTP 401.*secret_env") as info:
        WebhookRoute("hook", receiver.url, "other").send(MESSAGE)
    assert info.value.response == "HTTP 401" and isinstance(info.value, ConnectorError)


def test_slack_payload_is_plain_text_with_slack_controls_escaped(http_receiver):
    receiver = http_receiver()
    SlackRoute("slack", receiver.url).send(MESSAGE)
    body = json.loads(receiver.requests[0]["body"])
    assert set(body) == {"text", "blocks"}
    everything = json.dumps(body)
    assert "<!channel>" not in everything and "<https://" not in everything and "<b>" not in everything
    assert "&lt;!channel&gt;" in body["text"] and "&amp; more" in body["text"]
    assert {b["text"]["type"] for b in body["blocks"] if "text" in b} == {"plain_text"}
    assert MESSAGE.id in everything
    assert slack_escape("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_down_error_and_slow_receivers_are_route_errors_that_name_the_fix(http_receiver):
    with pytest.raises(RouteError, match=r"cannot reach .*check the URL") as down:
        SlackRoute("slack", closed_port_url()).send(MESSAGE)
    assert down.value.response == "unreachable" and "/hook" not in str(down.value)  # a Slack URL's path is secret
    receiver = http_receiver()
    receiver.mode = "500"
    with pytest.raises(RouteError, match="HTTP 500"):
        SlackRoute("slack", receiver.url).send(MESSAGE)
    receiver.mode = "slow"
    with pytest.raises(RouteError, match=r"did not answer within 0\.3 s.*alerts\.timeout_s") as slow:
        SlackRoute("slack", receiver.url, timeout_s=0.3).send(MESSAGE)
    assert slow.value.response == "timeout"


def test_email_is_plain_text_with_the_notification_id_as_message_id(smtp_server):
    server = smtp_server()
    route = EmailRoute("mail", server.host, server.port, "vigil@example.org", ["ops@example.org", "ds@example.org"])
    reply = route.send(MESSAGE)
    assert reply.startswith("250")
    (mail,) = server.messages
    assert mail["Subject"] == MESSAGE.subject and mail["To"] == "ops@example.org, ds@example.org"
    assert mail["Message-ID"] == "<vigil-alert-7-opened-1@example.org>"
    assert mail.get_content_type() == "text/plain" and not mail.is_multipart()
    assert "<!channel>" in mail.get_payload(decode=True).decode()  # plain text, shown as written


def test_email_over_starttls_with_login(smtp_server):
    server = smtp_server(tls=True)
    plain = EmailRoute("mail", server.host, server.port, "vigil@example.org", ["ops@example.org"])
    with pytest.raises(RouteError):  # the server requires STARTTLS and a login
        plain.send(MESSAGE)
    untrusted = EmailRoute("mail", server.host, server.port, "vigil@example.org", ["ops@example.org"],
                           starttls=True, username=SMTP_USER, password=SMTP_PASSWORD)
    with pytest.raises(RouteError, match=r"TLS handshake .*ca_file"):
        untrusted.send(MESSAGE)
    wrong = EmailRoute("mail", server.host, server.port, "vigil@example.org", ["ops@example.org"],
                       starttls=True, username=SMTP_USER, password="nope", ca_file=server.ca_file)
    with pytest.raises(RouteError, match=r"refused the login .*password_env"):
        wrong.send(MESSAGE)
    route = EmailRoute("mail", server.host, server.port, "vigil@example.org", ["ops@example.org"],
                       starttls=True, username=SMTP_USER, password=SMTP_PASSWORD, ca_file=server.ca_file)
    assert route.send(MESSAGE).startswith("250")
    assert [m["Message-ID"] for m in server.messages] == ["<vigil-alert-7-opened-1@example.org>"]


def test_email_to_a_closed_port_is_a_route_error():
    port = int(closed_port_url().split(":")[2].split("/")[0])
    with pytest.raises(RouteError, match=r"cannot send through 127.0.0.1:.*smtp_host"):
        EmailRoute("mail", "127.0.0.1", port, "vigil@example.org", ["ops@example.org"], timeout_s=2).send(MESSAGE)
