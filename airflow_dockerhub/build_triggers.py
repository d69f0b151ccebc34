"""Remote build triggers: the lookup table of trigger URLs, and the request that rebuilds one tag."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_dockerhub.targets import redact_url

#: The two generations of trigger URL Docker Hub has handed out. The token (or the trigger uuid) in the
#: path is the only credential, so the whole URL is a secret.
_LEGACY_TRIGGER = re.compile(r"^/u/(?P<namespace>[^/]+)/(?P<repository>[^/]+)/trigger/(?P<token>[^/]+)/?$")
_SOURCE_TRIGGER = re.compile(r"^/api/build/v1/source/(?P<source>[^/]+)/trigger/(?P<token>[^/]+)/call/?$")

SOURCE_TYPES = ("Branch", "Tag")


@dataclass(frozen=True)
class BuildTrigger:
    """
    How to rebuild one repository (or one tag of it) through its remote build trigger.

    :param url: the trigger URL, a secret.
    :param source_type: ``Branch`` or ``Tag`` when the rebuild must name the source rather than the
        Docker tag; ``None`` to name the Docker tag.
    :param source_name: the branch or Git tag to rebuild, with ``source_type``.
    """

    url: str
    source_type: str | None = None
    source_name: str | None = None

    @property
    def redacted(self) -> str:
        """Give a form of the URL safe to print: scheme and host, the token-bearing path hidden."""
        return redact_url(self.url)

    def request_body(self, tag: str) -> dict[str, str]:
        """
        Name exactly what to rebuild: the configured source, else the failed Docker tag.

        ``{"build": true}`` and an empty body rebuild every tag of the repository, so neither is ever sent.

        :param tag: the Docker tag whose build failed.
        :raise ValueError: when there is no tag to name.
        """
        if self.source_type and self.source_name:
            return {"source_type": self.source_type, "source_name": self.source_name}
        if not tag:
            raise ValueError("A rebuild must name the Docker tag to rebuild")
        return {"docker_tag": tag}


def parse_trigger_table(raw: Any, setting: str) -> dict[str, BuildTrigger]:
    """
    Read the lookup table from repositories (``namespace/repository``, optionally ``:tag``) to triggers.

    A value is the trigger URL, or an object ``{"url": ..., "source_type": "Branch", "source_name":
    "main"}`` when the rebuild must name a source.

    :param raw: the stored value: a JSON string or an already decoded object; ``None`` for none.
    :param setting: where it came from, named in errors (never with a URL in them).
    :raise ValueError: on anything that is not such a table.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ValueError(f"{setting} is not JSON") from None
    if not isinstance(raw, Mapping):
        raise ValueError(f"{setting} must be a JSON object from repositories to trigger URLs")

    table = {}
    for key, value in raw.items():
        repo_name = str(key).partition(":")[0]
        if repo_name.count("/") != 1 or not all(repo_name.split("/")):
            # A key that is not a repository may be a trigger URL put on the wrong side: never echo it.
            shown = "a key" if "://" in str(key) or len(str(key)) > 80 else repr(key)
            raise ValueError(f"{setting}: {shown} is not namespace/repository or namespace/repository:tag")
        table[str(key)] = _read_trigger(value, f"{setting}[{key!r}]")
    return table


def _read_trigger(value: Any, where: str) -> BuildTrigger:
    if isinstance(value, str):
        value = {"url": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("url"), str):
        raise ValueError(f"{where} must be a trigger URL or an object with a 'url'")
    url = value["url"].strip()
    parts = urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"{where} must be an https URL")
    if not (_LEGACY_TRIGGER.match(parts.path) or _SOURCE_TRIGGER.match(parts.path)):
        raise ValueError(
            f"{where} is not a Docker Hub trigger URL (/u/<ns>/<repo>/trigger/<token>/ or "
            "/api/build/v1/source/<uuid>/trigger/<uuid>/call/)"
        )
    source_type, source_name = value.get("source_type"), value.get("source_name")
    if (source_type is None) != (source_name is None) or (source_type and source_type not in SOURCE_TYPES):
        raise ValueError(f"{where}: source_type (Branch or Tag) and source_name go together")
    return BuildTrigger(url=url, source_type=source_type, source_name=source_name)


def find_trigger(table: Mapping[str, BuildTrigger], repo_name: str, tag: str) -> BuildTrigger | None:
    """
    Look up the trigger for one tag: an entry for ``repository:tag`` wins over one for the repository.

    :param table: the parsed lookup table.
    :param repo_name: ``namespace/repository``.
    :param tag: the Docker tag.
    """
    return table.get(f"{repo_name}:{tag}") or table.get(repo_name)
