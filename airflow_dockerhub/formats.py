"""Message formats: how each kind of target wants a notice written."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_dockerhub.builds import BuildState
from airflow_dockerhub.notices import REMINDER_EVENT, RESOLVED_STATUS, RETRY_EVENTS, Notice
from airflow_dockerhub.payloads import build_url, repository_url, webhook_payload

if TYPE_CHECKING:
    from airflow_dockerhub.freshness import TagNotice
    from airflow_dockerhub.health import HealthNotice

#: Chat services cut or refuse long messages; these keep every message well inside their limits.
MAX_TEXT = 3000
MAX_FIELD = 300
MAX_GROUP_LINES = 20

COLORS = {
    "Failed": "#d40e0d",
    "Cancelled": "#9e9e9e",
    "Queued": "#e8a317",
    "Building": "#e8a317",
    "Stale": "#e8a317",
    "Missing": "#d40e0d",
}
RESOLVED_COLOR = "#2eb886"


class MessageFormat(str, enum.Enum):
    """What a target expects to receive."""

    DOCKERHUB = "dockerhub"
    SLACK = "slack"
    ROCKETCHAT = "rocketchat"

    @classmethod
    def parse(cls, value: Any, setting: str) -> MessageFormat:
        """
        Read a format name.

        :param value: the raw value; ``None`` means the default, ``dockerhub``.
        :param setting: where it came from, named in the error.
        :raise ValueError: for an unknown format.
        """
        if value is None or value == "":
            return cls.DOCKERHUB
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            names = ", ".join(member.value for member in cls)
            raise ValueError(f"{setting} must be one of {names}, got {value!r}") from None


@dataclass(frozen=True)
class Message:
    """
    One request body for one target, and the notices it carries.

    :param message_id: identifies the message; the same on every attempt to deliver it.
    :param event: the event header value.
    :param body: the JSON body.
    :param notice_ids: the notices the message delivers.
    :param test: whether the message is a test.
    """

    message_id: str
    event: str
    body: dict[str, Any]
    notice_ids: tuple[str, ...]
    test: bool = False


def render(
    message_format: MessageFormat, notices: Sequence[Notice], now: datetime, group_from: int = 0
) -> list[Message]:
    """
    Write notices in a target's format.

    The ``dockerhub`` format sends one webhook per notice, since its receivers expect Docker Hub's
    own shape. Chat formats send one message per notice too, except when ``group_from`` or more
    notices arrive in one cycle: then they get one grouped message, so a Docker Hub incident does not
    flood the channel.

    :param message_format: the target's format.
    :param notices: the notices due for the target.
    :param now: the moment of detection.
    :param group_from: how many notices make a grouped chat message; 0 never groups.
    """
    if message_format is MessageFormat.DOCKERHUB:
        return [
            Message(n.notice_id, n.event, webhook_payload(n.build, n.status, now), (n.notice_id,), n.test)
            for n in notices
        ]
    chat = _SlackWriter() if message_format is MessageFormat.SLACK else _RocketChatWriter()
    if group_from and len(notices) >= group_from:
        return [chat.grouped(notices, now)]
    return [chat.single(notice, now) for notice in notices]


def render_health(message_format: MessageFormat, notice: HealthNotice) -> Message:
    """
    Write a notice about the monitor itself in a target's format.

    The ``dockerhub`` format has no Docker Hub original to follow here, so it sends a ``monitor``
    object: ``event``, ``status`` (``Unreadable``, ``CredentialsRejected``, ``BuildsRetired`` or
    ``Recovered``), the
    ``namespace`` or ``docker_id`` concerned, ``since``, ``cycles``, ``error`` and a ``message`` for
    people. Chat formats send the message as text.

    :param message_format: the target's format.
    :param notice: the notice.
    """
    if message_format is MessageFormat.DOCKERHUB:
        if notice.recovered:
            status = "Recovered"
        else:
            status = {"credentials": "CredentialsRejected", "retired": "BuildsRetired"}.get(
                notice.kind, "Unreadable"
            )
        subject = "docker_id" if notice.kind == "credentials" else "namespace"
        body: dict[str, Any] = {
            "monitor": {
                "event": notice.event,
                "status": status,
                subject: notice.subject,
                "since": notice.since,
                "cycles": notice.cycles,
                "error": notice.error,
                "message": notice.summary,
            }
        }
    else:
        chat = _SlackWriter() if message_format is MessageFormat.SLACK else _RocketChatWriter()
        if notice.recovered:
            headline = "Docker Hub monitor recovered"
        elif notice.kind == "retired":
            headline = "Docker Hub automated builds retired"
        else:
            headline = "Docker Hub monitor problem"
        body = {
            "text": headline,
            "attachments": [
                {
                    "color": RESOLVED_COLOR if notice.recovered else COLORS["Failed"],
                    "text": _clip(chat.escape(notice.summary), MAX_TEXT),
                }
            ],
        }
    return Message(notice.notice_id, notice.event, body, (notice.notice_id,))


def render_tag(message_format: MessageFormat, notice: TagNotice, now: datetime) -> Message:
    """
    Write a notice about a tag's freshness in a target's format.

    The ``dockerhub`` format follows Docker Hub's push webhook: ``push_data.tag`` is the tag that
    counts (the rule's tag or pattern when none is left), ``push_data.pushed_at`` its last push in
    epoch seconds (for a missing tag, the moment it was found missing), ``repository.status`` is
    ``Stale``, ``Missing`` or ``Fresh``, and a ``freshness`` object tells the rule and the timing.
    Chat formats send a headline and the same facts as fields.

    :param message_format: the target's format.
    :param notice: the notice.
    :param now: the moment of detection.
    """
    state, rule = notice.state, notice.state.rule
    tag = state.tag or rule.tag
    if message_format is MessageFormat.DOCKERHUB:
        pushed = state.pushed_at or now
        body: dict[str, Any] = {
            "push_data": {
                "pushed_at": int(pushed.timestamp()),
                "images": [],
                "tag": tag,
                "pusher": rule.namespace,
            },
            "repository": {
                "status": notice.status,
                "repo_url": repository_url(rule.repository),
                "owner": rule.namespace,
                "name": rule.name,
                "namespace": rule.namespace,
                "repo_name": rule.repository,
            },
            "freshness": {
                "event": notice.event,
                "rule_tag": rule.tag,
                "tag": state.tag,
                "last_pushed": state.pushed_at.isoformat() if state.pushed_at else None,
                "due": state.due.isoformat() if state.due else None,
                "interval_seconds": int(rule.interval.total_seconds()),
                "grace_seconds": int(rule.grace.total_seconds()),
                "message": notice.message(now),
            },
        }
        return Message(notice.notice_id, notice.event, body, (notice.notice_id,))

    chat = _SlackWriter() if message_format is MessageFormat.SLACK else _RocketChatWriter()
    what = {"Stale": "tag not pushed in time", "Missing": "tag missing"}.get(
        notice.status, "tag pushed again"
    )
    last = state.pushed_at.strftime("%Y-%m-%d %H:%M UTC") if state.pushed_at else "unknown"
    attachment = {
        "title": _clip(f"{rule.repository}:{tag}", MAX_FIELD),
        "title_link": repository_url(rule.repository),
        "color": COLORS.get(notice.status, RESOLVED_COLOR),
        "text": _clip(chat.escape(notice.message(now)), MAX_TEXT),
        "fields": [
            {"title": "Repository", "value": _clip(chat.escape(rule.repository), MAX_FIELD), "short": True},
            {"title": "Tag", "value": _clip(chat.escape(tag), MAX_FIELD), "short": True},
            {"title": "Status", "value": notice.status, "short": True},
            {"title": "Last pushed", "value": last, "short": True},
        ],
    }
    headline = f"Docker Hub {what}: {chat.escape(rule.repository)}:{chat.escape(tag)}"
    body = {"text": _clip(headline, MAX_TEXT), "attachments": [attachment]}
    return Message(notice.notice_id, notice.event, body, (notice.notice_id,))


def duration_text(seconds: float) -> str:
    """Write a duration the way people read it: ``2h 5m``, ``4m 15s``, ``40s``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _timing(notice: Notice, now: datetime) -> tuple[str, str]:
    """Say how long a build ran (finished builds) or has been waiting or running (the others)."""
    build = notice.build
    if build.created is None:
        return "Time", "unknown"
    if build.state.is_final:
        return "Ran", duration_text(((build.last_updated or build.created) - build.created).total_seconds())
    label = "Waiting" if build.state is BuildState.QUEUED else "Running"
    return label, duration_text((now - build.created).total_seconds())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _ChatWriter:
    """Shared shape of Slack's and Rocket.Chat's incoming-webhook messages: text plus attachments."""

    def escape(self, text: str) -> str:
        raise NotImplementedError

    def link(self, url: str, text: str) -> str:
        raise NotImplementedError

    def headline(self, notice: Notice) -> str:
        build = notice.build
        prefix = "[TEST] " if notice.test else ""
        if notice.status == RESOLVED_STATUS:
            what = "build succeeded again"
        elif notice.event == RETRY_EVENTS["refused"]:
            what = "rebuild refused"
        elif notice.event == RETRY_EVENTS["not_honored"]:
            what = "rebuild requested, but no new build started"
        elif notice.event == REMINDER_EVENT:
            what = f"build still {notice.status.lower()}"
        else:
            what = {"Failed": "build failed", "Cancelled": "build cancelled"}.get(
                notice.status, f"build {notice.status.lower()} too long"
            )
        return f"{prefix}Docker Hub {what}: {self.escape(build.repo_name)}:{self.escape(build.tag)}"

    def single(self, notice: Notice, now: datetime) -> Message:
        build = notice.build
        label, duration = _timing(notice, now)
        url = build_url(build.repo_name, build.build_key)
        code = build.raw.get("status", build.raw.get("state"))
        status = (
            f"{notice.status} ({code})"
            if code is not None and notice.status != RESOLVED_STATUS
            else notice.status
        )
        attachment = {
            "title": _clip(f"{build.repo_name}:{build.tag}", MAX_FIELD),
            "title_link": url,
            "color": RESOLVED_COLOR
            if notice.status == RESOLVED_STATUS
            else COLORS.get(notice.status, "#e8a317"),
            "text": _clip(self.link(url, f"Build {self.escape(build.build_key)} on Docker Hub"), MAX_TEXT),
            "fields": [
                {
                    "title": "Repository",
                    "value": _clip(self.escape(build.repo_name), MAX_FIELD),
                    "short": True,
                },
                {"title": "Tag", "value": _clip(self.escape(build.tag), MAX_FIELD), "short": True},
                {"title": "Status", "value": _clip(self.escape(str(status)), MAX_FIELD), "short": True},
                {"title": label, "value": duration, "short": True},
            ],
        }
        body = {"text": _clip(self.headline(notice), MAX_TEXT), "attachments": [attachment]}
        return Message(notice.notice_id, notice.event, body, (notice.notice_id,), notice.test)

    def grouped(self, notices: Sequence[Notice], now: datetime) -> Message:
        namespaces = sorted({n.build.namespace for n in notices})
        lines = []
        for notice in notices[:MAX_GROUP_LINES]:
            build = notice.build
            label, duration = _timing(notice, now)
            name = self.escape(f"{build.repo_name}:{build.tag}")
            link = self.link(build_url(build.repo_name, build.build_key), name)
            lines.append(f"• {link} {self.escape(notice.status)} ({label.lower()} {duration})")
        if len(notices) > MAX_GROUP_LINES:
            lines.append(f"+{len(notices) - MAX_GROUP_LINES} more")
        headline = (
            f"Docker Hub: {len(notices)} build notices in {self.escape(', '.join(namespaces))}"
            " in one cycle, possibly a Docker Hub incident"
        )
        body = {
            "text": _clip(headline, MAX_TEXT),
            "attachments": [{"color": COLORS["Failed"], "text": _clip("\n".join(lines), MAX_TEXT)}],
        }
        ids = tuple(n.notice_id for n in notices)
        group_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "dockerhub-build-group:" + ",".join(sorted(ids))))
        return Message(group_id, "build.grouped", body, ids, any(n.test for n in notices))


class _SlackWriter(_ChatWriter):
    def escape(self, text: str) -> str:
        # Slack's mrkdwn reads only these three as markup; everything else is literal.
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def link(self, url: str, text: str) -> str:
        return f"<{url}|{text}>"


class _RocketChatWriter(_ChatWriter):
    # Characters that start emphasis, code or a link in Rocket.Chat's markdown.
    _MARKUP = "\\*_~`[]"

    def escape(self, text: str) -> str:
        return "".join(f"\\{char}" if char in self._MARKUP else char for char in text)

    def link(self, url: str, text: str) -> str:
        return f"[{text}]({url})"
