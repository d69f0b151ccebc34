"""
The wheel and the sdist hold what the package needs, and the wheel alone makes a working provider.

The distributions are built once per module with ``python -m build``, which makes the sdist and then
the wheel from the unpacked sdist, so a file missing from the sdist is missing from the wheel too.
The last test installs the wheel with pip into a fresh virtual environment, away from this checkout,
and uses it there the way a user would; it takes a minute or two, most of it pip installing Airflow.
"""

from __future__ import annotations

import ast
import configparser
import json
import tarfile
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from airflow_dockerhub import __version__, bundled_dags
from tests.distribution import build_distributions, clean_environment, install_wheel, run

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = PROJECT / "airflow_dockerhub"
REPO_DAGS = PROJECT / "dags"
SAMPLES = sorted(path.name for path in (PACKAGE / "emulator" / "samples").glob("*.json"))
DIST_NAME = "airflow_provider_dockerhub"
DIST_INFO = f"{DIST_NAME}-{__version__}.dist-info"
SDIST_ROOT = f"{DIST_NAME}-{__version__}"
DAG_IDS = ["dockerhub_build_monitor", "dockerhub_rebuild"]
#: The Airflow releases the project is tested with: the lowest in CI (.ci/run) up to the next major.
AIRFLOW_RANGE = SpecifierSet(">=3.3.0,<4")


def _package_files() -> list[str]:
    """Return the files of the source package, as wheel paths: modules, samples, anything else."""
    return sorted(
        path.relative_to(PROJECT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    build_distributions(out)
    wheels = list(out.glob("*.whl"))
    sdists = list(out.glob("*.tar.gz"))
    assert [wheel.name for wheel in wheels] == [f"{DIST_NAME}-{__version__}-py3-none-any.whl"]
    assert [sdist.name for sdist in sdists] == [f"{SDIST_ROOT}.tar.gz"]
    return wheels[0], sdists[0]


@pytest.fixture(scope="module")
def wheel_files(dists):
    with zipfile.ZipFile(dists[0]) as wheel:
        return {name: wheel.read(name) for name in wheel.namelist()}


def test_wheel_holds_every_module_the_samples_and_the_dag_files(wheel_files):
    names = set(wheel_files)
    missing = [name for name in _package_files() if name not in names]
    assert not missing, f"not in the wheel: {missing}"
    for sample in SAMPLES:
        name = f"airflow_dockerhub/emulator/samples/{sample}"
        assert json.loads(wheel_files[name]) == json.loads((PROJECT / name).read_text(encoding="utf-8"))
    assert len(SAMPLES) >= 4
    assert "airflow_dockerhub/bundled_dags.py" in names
    assert "airflow_dockerhub/dags/build_monitor.py" in names
    assert "airflow_dockerhub/dags/rebuild.py" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    # Only the package and its metadata: no tests, scripts or repository files at the top level.
    assert {name.split("/")[0] for name in names} == {"airflow_dockerhub", DIST_INFO}


def test_wheel_metadata_names_the_provider_entry_point_version_license_and_airflow_range(wheel_files):
    meta = Parser().parsestr(wheel_files[f"{DIST_INFO}/METADATA"].decode("utf-8"))
    assert meta["Name"] == "airflow-provider-dockerhub"
    assert meta["Version"] == __version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert wheel_files[f"{DIST_INFO}/licenses/LICENSE"] == (PROJECT / "LICENSE").read_bytes()
    requires = {
        req.name: req for req in map(Requirement, meta.get_all("Requires-Dist")) if req.marker is None
    }
    assert requires["apache-airflow"].specifier == AIRFLOW_RANGE

    entry_points = configparser.ConfigParser(delimiters=("=",))
    entry_points.optionxform = str
    entry_points.read_string(wheel_files[f"{DIST_INFO}/entry_points.txt"].decode("utf-8"))
    assert dict(entry_points["apache_airflow_provider"]) == {
        "provider_info": "airflow_dockerhub.get_provider_info:get_provider_info"
    }


def test_sdist_holds_license_readme_changelog_dags_and_samples(dists):
    with tarfile.open(dists[1]) as sdist:
        names = {name.removeprefix(f"{SDIST_ROOT}/") for name in sdist.getnames()}
        license_text = sdist.extractfile(f"{SDIST_ROOT}/LICENSE").read()
    expected = {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "PKG-INFO"}
    expected |= {f"dags/{name}" for name in bundled_dags.DAG_FILES}
    expected |= {f"airflow_dockerhub/emulator/samples/{sample}" for sample in SAMPLES}
    assert expected <= names, f"not in the sdist: {sorted(expected - names)}"
    assert license_text == (PROJECT / "LICENSE").read_bytes()


def test_license_is_the_apache_license_2():
    text = (PROJECT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n")
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(text.splitlines()) > 190


def test_changelog_has_an_unreleased_section_and_an_entry_for_this_version():
    lines = (PROJECT / "CHANGELOG.md").read_text(encoding="utf-8").splitlines()
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[0] == "## [Unreleased]"
    assert headings[1].startswith(f"## [{__version__}] - ")


def test_bundled_dag_files_are_the_repository_dag_files():
    repository = {path.name: path.read_text(encoding="utf-8") for path in REPO_DAGS.glob("*.py")}
    assert bundled_dags.DAG_FILES == repository, (
        "dags/ and airflow_dockerhub/bundled_dags.py (DAG_FILES) must hold the same DAG files"
    )


@pytest.mark.parametrize("name", sorted(bundled_dags.DAG_FILES))
def test_bundled_dag_files_only_import_a_factory_and_call_it(name):
    # Parsing must do no I/O: the file is a docstring, imports, and `dag = <factory>()`.
    body = ast.parse(bundled_dags.DAG_FILES[name]).body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    assert all(isinstance(node, ast.ImportFrom) for node in body[1:-1])
    assert all(node.module.startswith(("__future__", "airflow_dockerhub.dags.")) for node in body[1:-1])
    last = body[-1]
    assert isinstance(last, ast.Assign) and [target.id for target in last.targets] == ["dag"]
    assert isinstance(last.value, ast.Call) and not last.value.args and not last.value.keywords


def test_copy_command_copies_then_leaves_the_same_files_alone(tmp_path, capsys):
    folder = tmp_path / "airflow" / "dags"
    assert bundled_dags.main([str(folder)]) == 0
    out = capsys.readouterr().out
    for name, text in bundled_dags.DAG_FILES.items():
        assert (folder / name).read_text(encoding="utf-8") == text
        assert f"copied {folder / name}" in out
    assert sorted(path.name for path in folder.iterdir()) == sorted(bundled_dags.DAG_FILES)

    assert bundled_dags.main([str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.count("unchanged ") == len(bundled_dags.DAG_FILES)


def test_copy_command_refuses_to_overwrite_a_changed_file_unless_forced(tmp_path, capsys):
    monitor, rebuild = (tmp_path / name for name in sorted(bundled_dags.DAG_FILES))
    monitor.write_text("# my own monitor DAG\n")

    assert bundled_dags.main([str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert f"refusing to overwrite {monitor}" in captured.err and "--force" in captured.err
    assert captured.out == ""
    # Nothing at all is written, not even the file that was missing.
    assert monitor.read_text() == "# my own monitor DAG\n"
    assert not rebuild.exists()

    assert bundled_dags.main(["--force", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"replaced {monitor}" in out and f"copied {rebuild}" in out
    assert monitor.read_text() == bundled_dags.DAG_FILES[monitor.name]
    assert sorted(path.name for path in tmp_path.iterdir()) == [monitor.name, rebuild.name]


def test_copy_command_rejects_a_file_as_dags_folder(tmp_path, capsys):
    not_a_folder = tmp_path / "dags"
    not_a_folder.write_text("")
    assert bundled_dags.main([str(not_a_folder)]) == 1
    assert "is not a folder" in capsys.readouterr().err


# Run in the fresh environment: the package must come from there, with its samples.
CHECK_INSTALL = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import airflow_dockerhub
    from airflow_dockerhub.emulator.responses import load_sample

    location = Path(airflow_dockerhub.__file__).resolve()
    assert location.is_relative_to(Path(sys.prefix).resolve()), location
    for name in sys.argv[1:]:
        assert load_sample(name), name
    print(airflow_dockerhub.__version__)
    """
)

# Parses the copied DAG files with sockets that refuse to connect and a metadata database that cannot
# be opened, as tests/dags/test_parsing.py does for the repository's dags/ folder.
PARSE_DAGS = textwrap.dedent(
    """
    import json, socket, sys

    def refuse(*args, **kwargs):
        raise RuntimeError("network access at parse time")

    socket.socket.connect = refuse
    socket.create_connection = refuse
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])  # examples are off: AIRFLOW__CORE__LOAD_EXAMPLES
    assert not bag.import_errors, bag.import_errors
    print(json.dumps(sorted(bag.dag_ids)))
    """
)


def test_wheel_installed_with_pip_alone_into_a_fresh_venv_is_a_working_provider(dists, tmp_path):
    wheel, _ = dists
    venv = tmp_path / "venv"
    work = tmp_path / "work"  # the working directory: nothing of the checkout is importable from it
    work.mkdir()
    env = clean_environment(venv, tmp_path / "airflow-home")
    python = install_wheel(venv, wheel, env=env, cwd=work)

    installed = run([python, "-c", CHECK_INSTALL, *SAMPLES], timeout=120, env=env, cwd=work)
    assert installed.stdout.strip() == __version__

    dags = tmp_path / "dags"
    copied = run([python, "-m", "airflow_dockerhub.bundled_dags", str(dags)], timeout=120, env=env, cwd=work)
    for name, text in bundled_dags.DAG_FILES.items():
        assert (dags / name).read_text(encoding="utf-8") == text
        assert f"copied {dags / name}" in copied.stdout

    listed = run(
        [venv / "bin" / "airflow", "providers", "list", "--output", "json"], timeout=300, env=env, cwd=work
    )
    providers = json.loads(listed.stdout)
    ours = [provider for provider in providers if provider["package_name"] == "airflow-provider-dockerhub"]
    assert ours and ours[0]["version"] == __version__, listed.stdout

    parse_env = dict(env, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path}/missing-dir/airflow.db")
    parsed = run([python, "-c", PARSE_DAGS, str(dags)], timeout=300, env=parse_env, cwd=work)
    assert json.loads(parsed.stdout.strip().splitlines()[-1]) == DAG_IDS
    assert not (tmp_path / "missing-dir").exists()
