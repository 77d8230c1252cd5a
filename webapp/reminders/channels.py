"""Delivery channels: email and group robots here, SMS, WeCom and DingTalk in personal.py.
Every channel has the same face, `send(to, content, *, key, before_send)` with an explicit
network timeout, and `close()`; a failure raises DeliveryError with a message recorded on
the row, and `before_send` returning False at the point of no return raises Withdrawn."""

import base64
import contextlib
import hashlib
import hmac
import json
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus, unquote, urlsplit

import requests

from webapp.outgoing import ForbiddenAddress, check_url, checked_session
from webapp.reminders.models import Webhook, WebhookKind


class DeliveryError(Exception):
    """Sending failed; `permanent` when trying again cannot help (a refused recipient),
    `unreachable` when the server could not be reached at all (nothing else will get
    through it either for now)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        unreachable: bool = False,
    ):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.unreachable = unreachable


class Withdrawn(Exception):  # noqa: N818 (not an error: the caller took the message back)
    """The caller withdrew the message before its point of no return; nothing was sent."""


def mail_folder(mail_url: str) -> Path | None:
    """The folder of the embedded mail sink (a file:// MAIL_URL), else None."""
    url = urlsplit(mail_url)
    return Path(unquote(url.path)) if url.scheme == "file" else None


def sink_folder(mail_url: str, instance_path: str) -> Path:
    """Where every channel set to "sink" writes: beside the mail sink, or instance/mail."""
    return mail_folder(mail_url) or Path(instance_path) / "mail"


# An addr-spec with nothing around it: printable ASCII, no spaces, brackets or line breaks.
PLAIN_ADDRESS = re.compile(r"[!#-;=?-~]+@[A-Za-z0-9.-]+")

# Before the point of no return: True to go on, False to withdraw the message.
BeforeSend = Callable[[], bool]


class EmailChannel:
    """Sends prepared messages over one SMTP connection per batch, or writes them as .eml
    files (the embedded default, `file://` URLs).

    MAIL_URL forms: smtp://host:25, smtp+starttls://user:pass@host:587,
    smtps://user:pass@host:465, file:///path/to/folder."""

    def __init__(self, url: str, *, sender: str, timeout: float, ca_file: str | None = None):
        self.url = urlsplit(url)
        self.sender = sender
        self.timeout = timeout
        self.ca_file = ca_file
        self.connection: smtplib.SMTP | None = None

    def _tls_context(self) -> ssl.SSLContext:
        # smtplib's own default does not check the server's certificate; this one does.
        return ssl.create_default_context(cafile=self.ca_file)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @property
    def is_file_sink(self) -> bool:
        return self.url.scheme == "file"

    def _connect(self) -> smtplib.SMTP:
        scheme, host, port = self.url.scheme, self.url.hostname or "localhost", self.url.port
        try:
            if scheme == "smtps":
                connection = smtplib.SMTP_SSL(
                    host, port or 465, timeout=self.timeout, context=self._tls_context()
                )
            else:
                connection = smtplib.SMTP(host, port or 25, timeout=self.timeout)
                if scheme == "smtp+starttls":
                    connection.starttls(context=self._tls_context())
            if self.url.username:
                connection.login(unquote(self.url.username), unquote(self.url.password or ""))
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(
                f"cannot connect to {host}:{port}: {error}", unreachable=True
            ) from error
        return connection

    def send(
        self, to: str, message: bytes, *, key: str, before_send: BeforeSend | None = None
    ) -> None:
        """Send one message to one recipient (reusing the open connection); `key` names
        the file in the sink.

        `before_send` is called once the server has accepted the envelope and waits for the
        body (the point of no return: the message is delivered when the body ends); if it
        returns False the connection is dropped, nothing is delivered, Withdrawn is raised."""
        if self.is_file_sink:
            if before_send is not None and not before_send():
                raise Withdrawn
            folder = mail_folder(self.url.geturl())
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{key}.eml").write_bytes(message)
            return
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = self._connect()
            try:
                self._transmit(to, message, before_send)
                return
            except smtplib.SMTPServerDisconnected as error:
                self.connection = None  # the server closed an idle connection: reconnect once
                if attempt == 2:
                    raise DeliveryError(f"server disconnected: {error}") from error
            except smtplib.SMTPRecipientsRefused as error:
                raise DeliveryError(
                    f"recipient refused: {error.recipients}", permanent=True
                ) from error
            except smtplib.SMTPResponseException as error:
                permanent = 500 <= error.smtp_code < 600
                raise DeliveryError(
                    f"{error.smtp_code} {error.smtp_error!r}", permanent=permanent
                ) from error
            except (OSError, smtplib.SMTPException) as error:
                self.close()
                raise DeliveryError(f"{type(error).__name__}: {error}") from error

    def _transmit(self, recipient: str, message: bytes, before_body: BeforeSend | None) -> None:
        """smtplib's sendmail() for one recipient, with a stop between DATA and the body."""
        connection = self.connection
        connection.ehlo_or_helo_if_needed()
        # Addresses go out as <addr-spec> as they are (smtplib's mail() and rcpt() would
        # parse them again for every message); anything but a plain address is refused.
        if not PLAIN_ADDRESS.fullmatch(recipient):
            raise DeliveryError(f"not a plain address: {recipient!r}", permanent=True)
        code, reply = connection.docmd("mail", f"FROM:<{self.sender_address}>")
        if code != 250:
            connection.rset()
            raise smtplib.SMTPSenderRefused(code, reply, self.sender_address)
        code, reply = connection.docmd("rcpt", f"TO:<{recipient}>")
        if code not in (250, 251):
            connection.rset()
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        code, reply = connection.docmd("data")
        if code != 354:
            connection.rset()
            raise smtplib.SMTPDataError(code, reply)
        if before_body is not None and not before_body():
            self.close_now()
            raise Withdrawn
        body = message
        if body.startswith(b".") or b"\n." in body:
            body = re.sub(rb"(?m)^\.", b"..", body)  # dot-stuffing (RFC 5321 4.5.2)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        connection.send(body + b".\r\n")
        code, reply = connection.getreply()
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)

    def close_now(self) -> None:
        """Drop the connection without a goodbye (a message half-way must not be ended)."""
        if self.connection is not None:
            with contextlib.suppress(OSError):
                self.connection.close()
            self.connection = None

    @property
    def sender_address(self) -> str:
        return self.sender.rsplit("<", 1)[-1].rstrip(">").strip()

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self.connection.quit()
            self.connection = None


@dataclass(frozen=True)
class RobotMessage:
    """What a group robot is sent: the text, the mobile numbers to @-mention, extra fields
    for a generic endpoint, and the time it is signed at (DingTalk, signed JSON)."""

    text: str
    mobiles: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    now: datetime | None = None


class WebhookChannel:
    """Posts to a group robot (WeCom, DingTalk) or a generic endpoint (signed JSON)."""

    def __init__(self, *, timeout: float):
        self.timeout = timeout
        self.http = checked_session()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        self.http.close()

    def send(
        self,
        to: Webhook,
        content: "RobotMessage | str",
        *,
        key: str = "",
        before_send: BeforeSend | None = None,
    ) -> None:
        """Post one message to the robot `to`; raise DeliveryError (with retry_after when
        throttled). `before_send` is called just before the request goes (see
        EmailChannel.send)."""
        if isinstance(content, str):
            content = RobotMessage(content)
        url, body, headers = self.request_for(
            to,
            content.text,
            mobiles=content.mobiles,
            data=content.data,
            now=content.now or datetime.now(UTC),
        )
        if before_send is not None and not before_send():
            raise Withdrawn
        try:
            check_url(url)
            response = self.http.post(url, data=body, headers=headers, timeout=self.timeout)
        except ForbiddenAddress as error:  # from check_url, or raised while connecting
            raise DeliveryError(f"address not allowed: {error}", permanent=True) from error
        except requests.RequestException as error:
            raise DeliveryError(f"{type(error).__name__}: {error}") from error
        if response.status_code == 429:
            raise DeliveryError("throttled (HTTP 429)", retry_after=_retry_after(response))
        if response.status_code >= 400:
            raise DeliveryError(
                f"HTTP {response.status_code}: {response.text[:200]}",
                permanent=400 <= response.status_code < 500,
            )
        if to.kind in (WebhookKind.WECOM, WebhookKind.DINGTALK):
            _check_robot_answer(response)

    @staticmethod
    def request_for(
        webhook: Webhook, text: str, *, mobiles: list[str], data: dict, now: datetime
    ) -> tuple[str, bytes, dict]:
        """The URL, body and headers for one message (separate so tests can check them)."""
        headers = {"Content-Type": "application/json; charset=utf-8"}
        url = webhook.url
        if webhook.kind == WebhookKind.WECOM:
            # Markdown cannot mention people; the text type can, by mobile number.
            payload = {
                "msgtype": "text",
                "text": {"content": text, "mentioned_mobile_list": mobiles},
            }
        elif webhook.kind == WebhookKind.DINGTALK:
            payload = {
                "msgtype": "text",
                "text": {"content": text},
                "at": {"atMobiles": mobiles, "isAtAll": False},
            }
            if webhook.secret:
                url = dingtalk_signed_url(url, webhook.secret, now=now)
        elif webhook.kind == WebhookKind.EVENTS:
            payload = data  # the event itself: {"id", "type", "created_at", "data"}
            headers["X-Yunketang-Event"] = str(data.get("type", ""))
            headers["X-Yunketang-Delivery"] = str(data.get("id", ""))
        else:
            payload = {"text": text, "mentions": mobiles, **data}
        body = json.dumps(payload, ensure_ascii=False).encode()
        if webhook.kind in (WebhookKind.GENERIC, WebhookKind.EVENTS) and webhook.secret:
            timestamp = str(int(now.timestamp()))
            signature = hmac.new(
                webhook.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
            ).hexdigest()
            headers["X-Yunketang-Timestamp"] = timestamp
            headers["X-Yunketang-Signature"] = f"sha256={signature}"
        return url, body, headers


def dingtalk_signed_url(url: str, secret: str, *, now: datetime) -> str:
    """DingTalk's robot signature: HMAC-SHA256 of "timestamp\\nsecret", base64, URL-encoded."""
    timestamp = str(int(now.timestamp() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = quote_plus(base64.b64encode(digest))
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={timestamp}&sign={sign}"


# errcodes the robots answer when a group sends too much (WeCom 45009, DingTalk 130101).
THROTTLE_CODES = {45009, 130101}


def _check_robot_answer(response) -> None:
    try:
        answer = response.json()
    except ValueError:
        return
    code = answer.get("errcode", 0)
    if code in THROTTLE_CODES:
        raise DeliveryError(f"throttled: {answer}", retry_after=60)
    if code:
        raise DeliveryError(f"robot refused: {answer}", permanent=True)


def _retry_after(response) -> float:
    value = response.headers.get("Retry-After", "60")
    try:
        return max(float(value), 1.0)
    except ValueError:
        return 60.0
