"""
Airflow's UI in a real browser (Debian's Chromium, headless, driven by Playwright): signing in, the
trigger form of each bundled DAG and the Docker Hub connection form.

Each page is photographed into ``test-artifacts/screenshots/<database>/`` for a person to look at.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from airflow_dockerhub.dags.build_monitor import create_build_monitor_dag
from airflow_dockerhub.dags.rebuild import create_rebuild_dag
from airflow_dockerhub.get_provider_info import CONNECTION_FORM
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.deployment import ADMIN_USER

pytestmark = pytest.mark.e2e

#: Debian's Chromium: Playwright cannot download its own browser here.
CHROMIUM = "/usr/bin/chromium"
# Without the flags that stop Chromium phoning home, its refused outgoing connections upset it.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Tall enough for a whole trigger form in one screenshot.
VIEWPORT = {"width": 1400, "height": 2400}
#: Milliseconds the UI gets for anything to appear, on a busy two-core machine.
UI_TIMEOUT = 30_000
#: Standard connection fields and the label Airflow gives them unless a provider relabels them.
STANDARD_LABELS = {"schema": "Schema", "port": "Port"}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or CHROMIUM
    if not Path(executable).exists():
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, deployment):
    """A fresh browser context signed in as the deployment's admin, through the login form."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(UI_TIMEOUT)
    opened = context.new_page()
    opened.goto(f"{deployment.url}/")
    opened.wait_for_url(re.compile(r"/auth/login"))
    opened.get_by_label("Username").fill(ADMIN_USER)
    opened.get_by_label("Password").fill(deployment.admin_password)
    opened.get_by_role("button", name="Sign in").click()
    opened.wait_for_url(lambda url: "/auth/login" not in url)
    yield opened
    context.close()


def screenshot(target, deployment, name: str) -> None:
    folder = ARTIFACTS / "screenshots" / deployment.database
    folder.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(folder / f"{name}.png"))


def test_signing_in_opens_the_dag_list_with_both_bundled_dags(page, deployment):
    page.goto(f"{deployment.url}/dags")
    for dag_id in ("dockerhub_build_monitor", "dockerhub_rebuild"):
        page.get_by_role("link", name=dag_id, exact=True).first.wait_for()
    screenshot(page, deployment, "dag-list")


@pytest.mark.parametrize(
    "factory", [create_build_monitor_dag, create_rebuild_dag], ids=["monitor", "rebuild"]
)
def test_the_trigger_form_shows_every_documented_param_with_its_description(page, deployment, factory):
    dag = factory()
    page.goto(f"{deployment.url}/dags/{dag.dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    form = page.get_by_role("dialog")
    form.get_by_text(f"Trigger Dag - {dag.dag_id}").wait_for()

    for name, param in dag.params.items():
        # A required param's label ends in an asterisk.
        form.get_by_text(re.compile(rf"^{re.escape(name)}\s*\*?$")).first.wait_for()
        form.get_by_text(param.description, exact=True).wait_for()
    screenshot(form, deployment, f"trigger-form-{dag.dag_id}")
    # Closed without triggering: the form would unpause the DAG and start a run.
    page.keyboard.press("Escape")


def test_the_connection_form_offers_docker_hub_with_its_labelled_fields(page, deployment):
    page.goto(f"{deployment.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    form = page.get_by_role("dialog")
    form.get_by_role("combobox", name="Connection Type").fill("Docker Hub")
    page.get_by_role("option", name="Docker Hub", exact=True).click()

    for field, label in CONNECTION_FORM["relabeling"].items():
        box = form.get_by_label(label, exact=True)
        box.wait_for()
        assert box.get_attribute("placeholder") == CONNECTION_FORM["placeholders"][field]
    for field in CONNECTION_FORM["hidden_fields"]:
        assert form.get_by_label(STANDARD_LABELS[field], exact=True).count() == 0, f"{field} is shown"
    screenshot(form, deployment, "connection-form-dockerhub")
    page.keyboard.press("Escape")
