"""Where webhooks go: notification URLs, the credentials inside them, and their printable form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from airflow_dockerhub.formats import MessageFormat

#: Query parameters whose values are treated as secrets wherever the URL is shown.
SECRET_QUERY_WORDS = ("token", "key", "secret", "password", "passwd", "pwd", "auth", "sig", "code")


@dataclass(frozen=True)
class WebhookTarget:
    """
    A notification URL split into what is sent on the wire and what goes into basic auth.

    :param url: the URL with any ``user:password@`` removed; path and query string are kept intact.
    :param username: the basic-auth user, if any.
    :param password: the basic-auth password, if any.
    """

    url: str
    username: str | None = None
    password: str | None = None

    @property
    def auth(self) -> tuple[str, str] | None:
        """The basic-auth pair, or ``None`` when the URL carries no credentials."""
        if self.username is None and self.password is None:
            return None
        return (self.username or "", self.password or "")

    @property
    def redacted(self) -> str:
        """Give a form of the URL safe to print: no credentials and no secret query values."""
        return redact_url(self.url)

    def secrets(self) -> list[str]:
        """
        List the values that must never be printed.

        They are the password, the whole URL, its path and query (which is how HTTP libraries log a
        request), and secret-looking query values.
        """
        parts = urlsplit(self.url)
        values = [self.password] if self.password else []
        values.append(self.url)
        if parts.path.strip("/"):
            values.append(parts.path + (f"?{parts.query}" if parts.query else ""))
        values.extend(value for name, value in parse_qsl(parts.query) if value and _is_secret_name(name))
        return values


def parse_notification_url(
    url: str, username: str | None = None, password: str | None = None
) -> WebhookTarget:
    """
    Split a notification URL such as ``https://user:pwd@host:10443/hook?token=123``.

    Credentials inside the URL become basic auth; explicit ``username``/``password`` are used when the
    URL carries none. The path and the query string are kept byte for byte.

    :param url: the whole notification URL.
    :param username: a user given apart from the URL (a connection's login).
    :param password: a password given apart from the URL (a connection's password).
    :raise ValueError: when the URL is not an absolute http or https URL.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"The notification URL {redact_url(url)!r} must be an absolute http(s) URL")

    if parts.username is not None or parts.password is not None:
        username = unquote(parts.username or "")
        password = unquote(parts.password or "") if parts.password is not None else None
    host = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return WebhookTarget(url=bare, username=username or None, password=password or None)


def redact_url(url: str) -> str:
    """
    Give a form of a URL safe to print: scheme and host only.

    Credentials can sit in the user part, in the query string, and in the path too: Slack's and
    Rocket.Chat's incoming-webhook URLs and Docker Hub's trigger URLs carry their token as path
    segments. So ``https://bot:s3cr3t@hooks.example.com/hook/T0/B1?token=abc`` prints as
    ``https://hooks.example.com/***``.

    :param url: any URL, valid or not.
    """
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "***"
    if not parts.scheme or not host:
        return "***"
    hidden = "/***" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{hidden}"


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_QUERY_WORDS)


@dataclass(frozen=True)
class TargetSettings:
    """
    How one target wants its notices.

    :param conn_id: the connection naming the target.
    :param message_format: the format it reads.
    :param send_resolved: whether it gets a notice when a later build of an alerted tag succeeds.
    """

    conn_id: str
    message_format: MessageFormat
    send_resolved: bool

    @classmethod
    def from_extra(cls, conn_id: str, extra: Mapping[str, Any]) -> TargetSettings:
        """
        Read a target's settings from its connection's extra.

        ``format`` is ``dockerhub`` (default), ``slack`` or ``rocketchat``. ``send_resolved`` defaults
        to false for ``dockerhub``, whose receivers expect only problem builds, and to true for chat.

        :param conn_id: the connection id.
        :param extra: the connection's extra, decoded.
        :raise ValueError: naming the connection and the field.
        """
        message_format = MessageFormat.parse(
            extra.get("format"), f"The 'format' extra of connection {conn_id}"
        )
        default = message_format is not MessageFormat.DOCKERHUB
        send_resolved = _flag(extra.get("send_resolved"), default, f"The 'send_resolved' extra of {conn_id}")
        return cls(conn_id=conn_id, message_format=message_format, send_resolved=send_resolved)


def _flag(value: Any, default: bool, setting: str) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise ValueError(f"{setting} must be true or false, got {value!r}")
