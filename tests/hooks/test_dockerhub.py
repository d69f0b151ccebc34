from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from airflow_dockerhub.builds import AUDIT_HISTORY, LEGACY_HISTORY, BuildState
from airflow_dockerhub.emulator import HubState, create_hub_app, serve_in_thread
from airflow_dockerhub.exceptions import (
    DockerHubAuthError,
    DockerHubError,
    DockerHubLoginError,
    DockerHubNotFoundError,
)
from airflow_dockerhub.hooks.dockerhub import DockerHubHook

NOW = datetime.now(timezone.utc)


@pytest.fixture
def hub():
    state = HubState(NOW)
    state.add_user("alice", "dckr_pat_alice")
    with serve_in_thread(create_hub_app(state)) as server:
        server.state = state
        yield server


def make_hook(monkeypatch, server, login=None, password=None, conn_id="dockerhub_default"):
    conn = {"conn_type": "dockerhub", "host": server.url}
    if login:
        conn.update(login=login, password=password)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return DockerHubHook(dockerhub_conn_id=conn_id)


def paths(state, fragment):
    return [path for _, path in state.requests if fragment in path]


def test_lists_every_repository_across_pages_and_keeps_the_automated_ones(monkeypatch, hub):
    for index in range(130):
        hub.state.add_repository("acme", f"repo-{index:03d}", automated=index % 3 != 0)
    hook = make_hook(monkeypatch, hub)

    repositories = list(hook.list_repositories("acme"))

    assert len(repositories) == 130
    assert len(paths(hub.state, "/v2/repositories/acme")) == 2
    automated = [repo for repo in repositories if hook.is_automated("acme", repo)]
    assert len(automated) == 86


def test_current_listing_is_used_when_the_legacy_one_is_gone(monkeypatch, hub):
    hub.state.legacy_listing_enabled = False
    hub.state.add_repository("acme", "built", automated=True)
    hub.state.add_repository("acme", "pushed", automated=False)
    hook = make_hook(monkeypatch, hub)

    repositories = list(hook.list_repositories("acme"))

    assert sorted(repo["name"] for repo in repositories) == ["built", "pushed"]
    assert all("is_automated" not in repo for repo in repositories)
    assert [repo["name"] for repo in repositories if hook.is_automated("acme", repo)] == ["built"]
    assert paths(hub.state, "/v2/namespaces/acme/repositories/built")


def test_unknown_namespace_names_the_setting(monkeypatch, hub):
    hook = make_hook(monkeypatch, hub)
    with pytest.raises(DockerHubNotFoundError, match="dockerhub_namespaces"):
        list(hook.list_repositories("nobody"))


def test_private_repositories_need_credentials_and_the_token_is_reused(monkeypatch, hub):
    hub.state.add_repository("acme", "open")
    hub.state.add_repository("acme", "secret", private=True)

    anonymous = make_hook(monkeypatch, hub)
    assert [repo["name"] for repo in anonymous.list_repositories("acme")] == ["open"]

    hook = make_hook(monkeypatch, hub, "alice", "dckr_pat_alice", conn_id="dockerhub_alice")
    assert sorted(repo["name"] for repo in hook.list_repositories("acme")) == ["open", "secret"]
    hook.get_build_history("acme", "secret")
    assert len(paths(hub.state, "/v2/auth/token")) == 1


def test_login_falls_back_to_the_older_endpoint(monkeypatch, hub):
    hub.state.auth_token_endpoint_enabled = False
    hub.state.add_repository("acme", "secret", private=True)
    hook = make_hook(monkeypatch, hub, "alice", "dckr_pat_alice")

    assert [repo["name"] for repo in hook.list_repositories("acme")] == ["secret"]
    assert paths(hub.state, "/v2/users/login")


def test_rejected_login_says_so_without_the_secret(monkeypatch, hub):
    hub.state.add_repository("acme", "app")
    hook = make_hook(monkeypatch, hub, "alice", "wrong-secret")
    with pytest.raises(DockerHubLoginError) as error:
        list(hook.list_repositories("acme"))
    assert "alice" in str(error.value)
    assert "wrong-secret" not in str(error.value)
    assert len(paths(hub.state, "/v2/auth")) == 1


def read_side_by_side(hook, names):
    """Read histories from several threads at once, as a monitor cycle does; errors are returned."""

    def read(name):
        try:
            return hook.get_build_history("acme", name)
        except DockerHubError as error:
            return error

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(read, names))


def signed_in_over_private_repositories(monkeypatch, hub, count=8):
    """Return a hook that has logged in and listed ``count`` private repositories, and their names."""
    names = [f"secret-{index}" for index in range(count)]
    for name in names:
        hub.state.add_repository("acme", name, private=True)
        hub.state.add_build("acme", name, status=10)
    hook = make_hook(monkeypatch, hub, "alice", "dckr_pat_alice")
    assert len(list(hook.list_repositories("acme"))) == count
    assert len(paths(hub.state, "/v2/auth/token")) == 1
    return hook, names


def test_a_token_revoked_mid_cycle_is_renewed_once_for_every_thread(monkeypatch, hub):
    hook, names = signed_in_over_private_repositories(monkeypatch, hub)

    assert hub.state.revoke_tokens("alice") == 1
    results = read_side_by_side(hook, names)

    assert all(isinstance(result, tuple) for result in results), results
    assert len(paths(hub.state, "/v2/auth/token")) == 2


def test_an_endpoint_refusing_a_fresh_token_costs_one_more_login_not_one_per_repository(monkeypatch, hub):
    hook, names = signed_in_over_private_repositories(monkeypatch, hub)
    hub.state.fail_next(100, 401, path_prefix="/v2/repositories/acme/secret-", body='{"detail": "no"}')

    results = read_side_by_side(hook, names)

    assert all(isinstance(result, DockerHubAuthError) for result in results), results
    assert len(paths(hub.state, "/v2/auth/token")) == 2


def test_credentials_rejected_on_renewal_stop_every_thread_without_another_login(monkeypatch, hub):
    hook, names = signed_in_over_private_repositories(monkeypatch, hub)
    hub.state.add_user("alice", "dckr_pat_rotated")
    hub.state.revoke_tokens("alice")

    results = read_side_by_side(hook, names)

    assert all(isinstance(result, DockerHubLoginError) for result in results), results
    assert all("dckr_pat_alice" not in str(result) for result in results)
    assert len(paths(hub.state, "/v2/auth/token")) == 2
    with pytest.raises(DockerHubLoginError):
        hook.get_build_history("acme", names[0])
    assert len(paths(hub.state, "/v2/auth/token")) == 2


def test_legacy_history_is_read_newest_first(monkeypatch, hub):
    hub.state.add_repository("acme", "app")
    hub.state.add_build("acme", "app", status=-1, created_minutes_ago=30)
    hub.state.add_build("acme", "app", tag="v1", status=10, created_minutes_ago=5)
    hook = make_hook(monkeypatch, hub)

    source, builds = hook.get_build_history("acme", "app")

    assert source == LEGACY_HISTORY
    assert [(b.tag, b.state) for b in builds] == [("v1", BuildState.SUCCESS), ("latest", BuildState.FAILED)]
    assert set(builds[0].raw) == {
        "id",
        "status",
        "created_date",
        "last_updated",
        "build_code",
        "dockertag_name",
        "cause",
    }


def test_audit_history_answers_when_legacy_is_404_and_the_choice_is_remembered(monkeypatch, hub):
    hub.state.add_repository("acme", "modern", history="audit")
    hub.state.add_build("acme", "modern", status=-1, created_minutes_ago=20)
    hook = make_hook(monkeypatch, hub)

    source, builds = hook.get_build_history("acme", "modern")
    assert source == AUDIT_HISTORY
    assert builds[0].state is BuildState.FAILED
    assert builds[0].raw["state"] == "Failed"

    legacy_reads = len(paths(hub.state, "/buildhistory"))
    hook.get_build_history("acme", "modern")
    assert len(paths(hub.state, "/buildhistory")) == legacy_reads


def test_repository_without_any_history_gives_none(monkeypatch, hub):
    hub.state.add_repository("acme", "empty", history="none")
    assert make_hook(monkeypatch, hub).get_build_history("acme", "empty") is None


def test_every_request_has_explicit_timeouts_and_one_session(monkeypatch, hub):
    hub.state.add_repository("acme", "app")
    hook = make_hook(monkeypatch, hub)
    seen = []
    original = hook.session.request

    def spy(method, url, **kwargs):
        seen.append(kwargs.get("timeout"))
        return original(method, url, **kwargs)

    monkeypatch.setattr(hook.session, "request", spy)
    list(hook.list_repositories("acme"))
    hook.get_build_history("acme", "app")
    assert seen and all(timeout == (10.0, 30.0) for timeout in seen)
    assert hook.get_conn() is hook.session


def test_connection_form_uses_docker_hub_words():
    form = DockerHubHook.get_ui_field_behaviour()
    assert form["relabeling"] == {
        "host": "API URL",
        "login": "Docker ID",
        "password": "Personal or organization access token",
    }
    assert form["placeholders"]["host"] == "https://hub.docker.com"
