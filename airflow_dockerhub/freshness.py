"""
Tag freshness: whether images are still being published, whatever builds them.

Automated builds on Docker Hub end, but a team still needs to know that its ``latest`` or its
release tags keep arriving. A freshness rule names a repository, a tag (or a pattern such as
``v*``), how often a push is expected and how much lateness to forgive. The decision is made from
the tags Docker Hub lists, with no Airflow or HTTP inside, so it is tested with plain values.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from airflow_dockerhub.builds import parse_timestamp

STALE_EVENT = "tag.stale"
MISSING_EVENT = "tag.missing"
FRESH_EVENT = "tag.fresh"

#: Kinds of alert record entries about tags; build resolution and rebuilds leave them alone.
STALE_KIND = "tag_stale"
MISSING_KIND = "tag_missing"
TAG_KINDS = frozenset({STALE_KIND, MISSING_KIND})

#: ``repository.status`` of each tag notice, in the place where build alerts say ``Failed``.
STALE_STATUS = "Stale"
MISSING_STATUS = "Missing"
FRESH_STATUS = "Fresh"

#: Lateness forgiven when a rule sets no ``grace``: a publishing job rarely runs to the minute.
DEFAULT_GRACE = timedelta(hours=1)
DEFAULT_TAG = "latest"

_PATTERN_CHARS = frozenset("*?[")
_SIMPLE_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])", re.IGNORECASE)
_ISO_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")
_RULE_FIELDS = frozenset({"repository", "tag", "interval", "grace"})


def parse_duration(value: Any, setting: str) -> timedelta:
    """
    Read a positive duration, in ISO 8601 or a short form.

    ISO 8601 is ``P1D``, ``PT6H``, ``P1W``; the short form is ``1d``, ``6h``, ``90m``, ``1d12h``
    (units ``w``, ``d``, ``h``, ``m``, ``s``).

    :param value: the raw value.
    :param setting: where it came from, named in the error.
    :raise ValueError: when the value is not a positive duration in one of those forms.
    """
    text = value.strip() if isinstance(value, str) else ""
    parts: dict[str, float] = {}
    iso = _ISO_DURATION.fullmatch(text) if text.upper().startswith("P") else None
    if iso and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
        parts = {name: float(amount) for name, amount in iso.groupdict().items() if amount}
    elif text and _SIMPLE_DURATION.sub("", text).strip() == "":
        for amount, unit in _SIMPLE_DURATION.findall(text):
            name = _UNITS[unit.lower()]
            parts[name] = parts.get(name, 0.0) + float(amount)
    duration = timedelta(**parts) if parts else timedelta(0)
    if duration <= timedelta(0):
        raise ValueError(
            f"{setting} must be a positive duration such as '1d', '6h', '90m', '1d12h' or ISO 8601 "
            f"'P1D', 'PT6H', got {value!r}"
        )
    return duration


def duration_text(duration: timedelta) -> str:
    """Write a duration in the short form rules use, largest units first: ``1d 6h``, ``45m``."""
    seconds = int(duration.total_seconds())
    words = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            words.append(f"{amount}{unit}")
    return " ".join(words) or "0s"


@dataclass(frozen=True)
class FreshnessRule:
    """
    How often a repository's tag, or any tag matching a pattern, is expected to be pushed.

    :param repository: ``namespace/name``.
    :param tag: a tag name, or an ``fnmatch`` pattern (``v*``, ``1.?``, ``release-[0-9]*``).
    :param interval: the longest expected time between two pushes.
    :param grace: lateness forgiven past the interval before the tag counts as stale.
    """

    repository: str
    tag: str
    interval: timedelta
    grace: timedelta = DEFAULT_GRACE

    @property
    def is_pattern(self) -> bool:
        """Whether the rule's tag is an ``fnmatch`` pattern rather than one tag name."""
        return bool(_PATTERN_CHARS & set(self.tag))

    @property
    def namespace(self) -> str:
        """The Docker Hub namespace of the rule's repository."""
        return self.repository.split("/", 1)[0]

    @property
    def name(self) -> str:
        """The repository's name within its namespace."""
        return self.repository.split("/", 1)[1]

    @property
    def label(self) -> str:
        """The rule as ``namespace/name:tag``, the tag possibly a pattern."""
        return f"{self.repository}:{self.tag}"

    def matches(self, tag: str) -> bool:
        """Tell whether a tag name falls under the rule; names are compared case-sensitively."""
        return fnmatchcase(tag, self.tag) if self.is_pattern else tag == self.tag


def parse_rules(value: Any, setting: str) -> list[FreshnessRule]:
    """
    Read the freshness rules.

    They are a JSON list of objects with ``repository``, ``tag`` (default ``latest``), ``interval``
    and ``grace`` (default one hour).

    :param value: the raw value (JSON text or an already decoded list); ``None`` or empty means no
        rules.
    :param setting: where it came from, named in every error.
    :raise ValueError: naming the setting, the rule and the field that is wrong.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise ValueError(
                f"{setting} is not JSON ({error.msg}); it must be a JSON list of rules"
            ) from None
    if not isinstance(value, list):
        raise ValueError(f"{setting} must be a JSON list of rules, got {type(value).__name__}")

    rules: list[FreshnessRule] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(value, start=1):
        where = f"{setting}, rule {index}"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where} must be a JSON object, got {item!r}")
        unknown = sorted(set(item) - _RULE_FIELDS)
        if unknown:
            raise ValueError(
                f"{where} has unknown fields {', '.join(unknown)}; known: {', '.join(sorted(_RULE_FIELDS))}"
            )
        repository = item.get("repository")
        if not isinstance(repository, str) or not _NAME.match(repository.strip().lower()):
            raise ValueError(f"{where}: 'repository' must be namespace/name, got {repository!r}")
        repository = repository.strip().lower()
        tag = item.get("tag", DEFAULT_TAG)
        if not isinstance(tag, str) or not tag.strip() or any(c.isspace() for c in tag.strip()):
            raise ValueError(f"{where} ({repository}): 'tag' must be a tag name or pattern, got {tag!r}")
        tag = tag.strip()
        if "interval" not in item:
            raise ValueError(f"{where} ({repository}:{tag}): 'interval' is required, such as '1d'")
        interval = parse_duration(item["interval"], f"{where} ({repository}:{tag}): 'interval'")
        grace = DEFAULT_GRACE
        if item.get("grace") not in (None, ""):
            grace = parse_duration(item["grace"], f"{where} ({repository}:{tag}): 'grace'")
        if (repository, tag) in seen:
            raise ValueError(f"{where} repeats the rule for {repository}:{tag}; keep one")
        seen.add((repository, tag))
        rules.append(FreshnessRule(repository, tag, interval, grace))
    return rules


@dataclass(frozen=True)
class TagPush:
    """
    One tag as Docker Hub lists it: its name and when it was last pushed.

    :param name: the tag name.
    :param pushed_at: ``tag_last_pushed``, else the tag's ``last_updated``; ``None`` when neither.
    """

    name: str
    pushed_at: datetime | None

    @classmethod
    def from_hub(cls, item: Mapping[str, Any]) -> TagPush:
        """Read a tag from the tags endpoint; ``last_updated`` stands in for a missing push time."""
        pushed = parse_timestamp(item.get("tag_last_pushed")) or parse_timestamp(item.get("last_updated"))
        return cls(str(item.get("name") or ""), pushed)

    def to_xcom(self) -> dict[str, Any]:
        """Turn the tag into plain JSON values, for XCom."""
        return {"name": self.name, "pushed_at": self.pushed_at.isoformat() if self.pushed_at else None}

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any]) -> TagPush:
        """Read a tag back from what :meth:`to_xcom` wrote."""
        return cls(str(value["name"]), parse_timestamp(value.get("pushed_at")))


#: What a rule's tags say.
FRESH = "fresh"
STALE = "stale"
MISSING = "missing"


@dataclass(frozen=True)
class TagState:
    """
    A rule judged against the tags Docker Hub listed.

    :param rule: the rule.
    :param verdict: ``fresh``, ``stale`` or ``missing``.
    :param tag: the tag that counts: the newest push among those matching; ``None`` when missing.
    :param pushed_at: when that tag was last pushed.
    :param due: when the next push was due at the latest (interval plus grace after ``pushed_at``).
    """

    rule: FreshnessRule
    verdict: str
    tag: str | None = None
    pushed_at: datetime | None = None
    due: datetime | None = None

    @property
    def alert_kind(self) -> str | None:
        """The kind of alert record entry the verdict raises, or ``None`` for a fresh tag."""
        return {STALE: STALE_KIND, MISSING: MISSING_KIND}.get(self.verdict)

    @property
    def event_id(self) -> str:
        """
        Identify the alert for receivers and the record.

        A stale alert belongs to the push it is overdue after, so a later push that goes stale
        again is a new alert; a missing tag is reported once for its rule until it comes back.
        """
        anchor = self.pushed_at.isoformat() if self.verdict == STALE and self.pushed_at else ""
        key = f"{self.rule.repository}:{self.rule.tag}:{anchor}:{self.verdict}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dockerhub-tag-alert:{key}"))

    def summary(self) -> dict[str, Any]:
        """Describe the alert as the record keeps it, in plain JSON values."""
        return {
            "event_id": self.event_id,
            "kind": self.alert_kind,
            "repository": self.rule.repository,
            "tag": self.rule.tag,
            "build": self.pushed_at.isoformat() if self.verdict == STALE and self.pushed_at else "",
            "build_updated": None,
        }


def judge(
    rule: FreshnessRule, tags: Sequence[TagPush] | None, now: datetime, complete: bool = True
) -> TagState | None:
    """
    Decide whether a rule's tag was pushed recently enough.

    For a tag name, that tag counts. For a pattern, the newest push among matching tags counts:
    release tags get a new name each time (``v1.4`` after ``v1.3``), so any of them proves that
    publishing goes on.

    :param rule: the rule.
    :param tags: the repository's tags as listed, or ``None`` when they could not be read; that
        decides nothing, since an outage must neither raise nor resolve an alert.
    :param now: the moment of judgement (aware).
    :param complete: whether the listing holds every tag; a tag absent from a cut-short listing is
        not reported missing.
    :return: the state, or ``None`` when nothing can be decided.
    """
    if tags is None:
        return None
    matching = [tag for tag in tags if rule.matches(tag.name)]
    if not matching:
        return TagState(rule, MISSING) if complete else None
    dated = [tag for tag in matching if tag.pushed_at is not None]
    if not dated:
        return None
    newest = max(dated, key=lambda tag: (tag.pushed_at, tag.name))
    assert newest.pushed_at is not None
    due = newest.pushed_at + rule.interval + rule.grace
    verdict = STALE if now > due else FRESH
    return TagState(rule, verdict, newest.name, newest.pushed_at, due)


def rule_repositories(rules: Iterable[FreshnessRule]) -> list[str]:
    """List the repositories whose tags must be read, once each, in a stable order."""
    return sorted({rule.repository for rule in rules})


def rules_to_xcom(rules: Iterable[FreshnessRule]) -> list[dict[str, Any]]:
    """Turn the rules into plain JSON values, for XCom; interval and grace become seconds."""
    return [
        {
            "repository": rule.repository,
            "tag": rule.tag,
            "interval": rule.interval.total_seconds(),
            "grace": rule.grace.total_seconds(),
        }
        for rule in rules
    ]


def rules_from_xcom(values: Iterable[Mapping[str, Any]]) -> list[FreshnessRule]:
    """Read rules back from what :func:`rules_to_xcom` wrote."""
    return [
        FreshnessRule(
            value["repository"],
            value["tag"],
            timedelta(seconds=float(value["interval"])),
            timedelta(seconds=float(value["grace"])),
        )
        for value in values
    ]


@dataclass(frozen=True)
class TagNotice:
    """
    One thing to tell the targets about a rule's tag: stale, missing, or fresh again.

    :param notice_id: identifies the notice; the same on every attempt to deliver it.
    :param event: ``tag.stale``, ``tag.missing`` or ``tag.fresh``.
    :param state: the rule's state that the notice reports.
    :param alert_ids: the alerts the notice announces or, for ``tag.fresh``, resolves.
    """

    notice_id: str
    event: str
    state: TagState
    alert_ids: tuple[str, ...]

    @property
    def status(self) -> str:
        """The word for ``repository.status``: ``Stale``, ``Missing`` or ``Fresh``."""
        return {STALE_EVENT: STALE_STATUS, MISSING_EVENT: MISSING_STATUS}.get(self.event, FRESH_STATUS)

    @classmethod
    def alert(cls, state: TagState) -> TagNotice:
        """Announce a stale or missing tag."""
        event = STALE_EVENT if state.verdict == STALE else MISSING_EVENT
        return cls(state.event_id, event, state, (state.event_id,))

    @classmethod
    def fresh(cls, state: TagState, alert_ids: Sequence[str]) -> TagNotice:
        """Say that a tag alerted before was pushed again, once for all its alerts."""
        pushed = state.pushed_at.isoformat() if state.pushed_at else ""
        key = f"{state.rule.repository}:{state.rule.tag}:{pushed}:fresh"
        notice_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dockerhub-tag-notice:{key}"))
        return cls(notice_id, FRESH_EVENT, state, tuple(alert_ids))

    def message(self, now: datetime) -> str:
        """Say in a sentence or two what happened and what it means, for people."""
        rule, state = self.state.rule, self.state
        expected = f"expected every {duration_text(rule.interval)} with {duration_text(rule.grace)} grace"
        which = f"tags matching {rule.tag!r}" if rule.is_pattern else f"the tag {rule.tag!r}"
        if self.event == MISSING_EVENT:
            return (
                f"Docker Hub lists none of {which} in {rule.repository} any more ({expected}). "
                "It was deleted or never pushed; nothing proves that images are still published."
            )
        pushed = state.pushed_at.isoformat() if state.pushed_at else "never"
        if self.event == STALE_EVENT:
            late = duration_text(now - state.due) if state.due else "unknown"
            return (
                f"{rule.repository}:{state.tag} was last pushed {pushed}, {late} past due ({expected}). "
                "Whatever publishes it (an automated build, a CI pipeline) has stopped or is failing."
            )
        return f"{rule.repository}:{state.tag} was pushed again at {pushed}; {which} are fresh again."
