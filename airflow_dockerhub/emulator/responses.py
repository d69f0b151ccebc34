"""Shape repositories and builds into the JSON bodies Docker Hub answers with."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from email.utils import format_datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from airflow_dockerhub.emulator.state import CANCELLED, SUCCESS, derived_uuid, format_timestamp

if TYPE_CHECKING:
    from airflow_dockerhub.emulator.state import Build, PublishedTag, Repository

_PENDING_STATUSES = frozenset({0, 1, 11})
_FINAL_AUDIT_STATES = frozenset({"Success", "Failed", "Canceled"})


@functools.cache
def load_sample(name: str) -> Any:
    """
    Load a Docker Hub response sample shipped in the ``samples`` folder.

    :param name: the file name, e.g. ``repository-legacy-get.json``.
    """
    text = (resources.files("airflow_dockerhub.emulator") / "samples" / name).read_text(encoding="utf-8")
    return json.loads(text)


def _fill(template: dict[str, Any], **values: Any) -> dict[str, Any]:
    # Only keys the real sample has may be set, so the emulator cannot drift from Docker Hub's shape.
    unknown = set(values) - set(template)
    if unknown:
        raise KeyError(f"Not in the Docker Hub sample: {', '.join(sorted(unknown))}")
    body = copy.deepcopy(template)
    body.update(values)
    return body


def legacy_listing_entry(repository: Repository, caller: str | None) -> dict[str, Any]:
    """
    Describe a repository as an item of the legacy ``GET /v2/repositories/{ns}/`` listing.

    :param repository: the repository.
    :param caller: the authenticated user, or ``None``.
    """
    return {
        "user": repository.namespace,
        "name": repository.name,
        "namespace": repository.namespace,
        "repository_type": "image",
        "status": 1,
        "description": "",
        "is_private": repository.private,
        "is_automated": repository.automated,
        "can_edit": caller == repository.namespace,
        "star_count": 0,
        "pull_count": repository.pull_count,
        "last_updated": format_timestamp(repository.last_updated),
        "is_migrated": False,
    }


def legacy_repository(repository: Repository, caller: str | None) -> dict[str, Any]:
    """
    Describe a repository as the legacy ``GET /v2/repositories/{ns}/{repo}/`` does.

    :param repository: the repository.
    :param caller: the authenticated user, or ``None``.
    """
    return _fill(
        load_sample("repository-legacy-get.json"),
        user=repository.namespace,
        name=repository.name,
        namespace=repository.namespace,
        status=1,
        description="",
        is_private=repository.private,
        is_automated=repository.automated,
        can_edit=caller == repository.namespace,
        star_count=0,
        pull_count=repository.pull_count,
        last_updated=format_timestamp(repository.last_updated),
        has_starred=False,
        full_description="",
    )


def namespace_listing_entry(repository: Repository) -> dict[str, Any]:
    """
    Describe a repository as an item of ``GET /v2/namespaces/{ns}/repositories``.

    Unlike the legacy listing, the entry has no ``is_automated``.

    :param repository: the repository.
    """
    template = load_sample("repositories-namespace-list-page.json")["results"][0]
    return _fill(
        template,
        name=repository.name,
        namespace=repository.namespace,
        repository_type="image",
        status=1,
        status_description="active",
        description="",
        is_private=repository.private,
        star_count=0,
        pull_count=repository.pull_count,
        last_updated=format_timestamp(repository.last_updated),
        last_modified=format_timestamp(repository.last_updated),
        date_registered=format_timestamp(repository.registered),
        affiliation="",
        media_types=["application/vnd.docker.container.image.v1+json"] if repository.builds else [],
        content_types=["image"] if repository.builds else [],
        categories=[],
        storage_size=0,
    )


def namespace_repository(repository: Repository) -> dict[str, Any]:
    """
    Describe a repository as ``GET /v2/namespaces/{ns}/repositories/{repo}`` does.

    :param repository: the repository.
    """
    return _fill(
        load_sample("repository-info-namespaces-get.json"),
        name=repository.name,
        namespace=repository.namespace,
        repository_type="image",
        status=1,
        status_description="Active",
        description="",
        is_private=repository.private,
        is_automated=repository.automated,
        star_count=0,
        pull_count=repository.pull_count,
        last_updated=format_timestamp(repository.last_updated),
        date_registered=format_timestamp(repository.registered),
        collaborator_count=0,
        hub_user=repository.namespace,
        has_starred=False,
        full_description="",
        media_types=[],
        content_types=[],
        categories=[],
        immutable_tags_settings={"enabled": False, "rules": []},
        storage_size=None,
        source=None,
    )


def audit_state(status: int) -> str:
    """
    Name a numeric build status the way the audit-action endpoint does.

    :param status: Docker Hub's numeric build status.
    """
    if status == SUCCESS:
        return "Success"
    if status == CANCELLED:
        return "Canceled"
    if status < 0:
        return "Failed"
    if status in _PENDING_STATUSES:
        return "Pending"
    return "In progress"


def audit_action(repository: Repository, build: Build) -> dict[str, Any]:
    """
    Describe a build as an object of ``GET /api/audit/v1/action/``.

    :param repository: the repository built.
    :param build: the build.
    """
    state = audit_state(build.status)
    return {
        "action": "Build",
        "build_tag": build.tag,
        "build_code": build.build_code,
        "state": state,
        "created": format_datetime(build.created),
        "end_date": format_datetime(build.updated) if state in _FINAL_AUDIT_STATES else None,
        "uuid": build.uuid,
        "resource_uri": f"/api/build/v1/{repository.namespace}/build/{build.uuid}/",
        "commit": hashlib.sha1(build.build_code.encode(), usedforsecurity=False).hexdigest(),
        "source_repo": repository.full_name,
    }


def build_source(repository: Repository, source_uuid: str) -> dict[str, Any]:
    """
    Describe the build source of a repository, as the v1 trigger call answers.

    Its ``state`` aggregates the finished builds, like Docker Hub's: it says nothing about the build
    the call just queued.

    :param repository: the repository triggered.
    :param source_uuid: the source uuid from the trigger URL.
    """
    return _fill(
        load_sample("trigger-v1-call-response-success-trimmed.json"),
        autotests="OFF",
        build_in_farm=True,
        build_settings=[
            f"/api/build/v1/setting/{derived_uuid('setting', repository.full_name, tag)}/"
            for tag in repository.tags()
        ],
        image=repository.full_name,
        provider="Github",
        repo_links=True,
        repository=repository.name,
        resource_uri=f"/api/build/v1/source/{source_uuid}/",
        state=_source_state(repository),
        uuid=source_uuid,
    )


def _source_state(repository: Repository) -> str:
    for build in repository.builds_newest_first():
        if build.status == SUCCESS:
            return "Success"
        if build.status < 0:
            return "Failed"
    return "Empty"


def tag_entry(repository: Repository, tag: PublishedTag) -> dict[str, Any]:
    """
    Describe a tag as an item of ``GET /v2/namespaces/{ns}/repositories/{repo}/tags``.

    :param repository: the repository the tag belongs to.
    :param tag: the tag and its last push.
    """
    pushed = format_timestamp(tag.pushed)
    template = load_sample("derived-tag-list-item.json")
    image = {**template["images"][0], "digest": tag.digest, "last_pushed": pushed, "last_pulled": None}
    return _fill(
        template,
        id=int(hashlib.sha256(f"{repository.full_name}:{tag.name}".encode()).hexdigest()[:8], 16),
        creator=0,
        images=[image],
        last_updated=pushed,
        last_updater=0,
        last_updater_username=repository.namespace,
        name=tag.name,
        repository=0,
        tag_last_pulled=None,
        tag_last_pushed=pushed,
        digest=tag.digest,
    )
