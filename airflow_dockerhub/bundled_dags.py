"""
Copy the provider's two DAG files into an Airflow DAGs folder.

A wheel installs the DAG factories of :mod:`airflow_dockerhub.dags` but no DAGs folder, so the thin
DAG files of the repository's ``dags/`` folder travel inside this module and are written out with::

    python -m airflow_dockerhub.bundled_dags "$AIRFLOW_HOME/dags"

A file already there with other contents is left alone, and nothing is written, unless ``--force`` is
given. The DAG files only import a factory and call it: parsing them reads no file and opens no
connection. This module itself needs nothing but the standard library, so it runs without Airflow.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The DAG files by file name, byte for byte the files of the repository's ``dags/`` folder.
DAG_FILES: dict[str, str] = {
    "dockerhub_build_monitor.py": (
        '"""Airflow DAG file for the Docker Hub build monitor; '
        'the DAG itself lives in the installed package."""\n'
        "\n"
        "from __future__ import annotations\n"
        "\n"
        "from airflow_dockerhub.dags.build_monitor import create_build_monitor_dag\n"
        "\n"
        "dag = create_build_monitor_dag()\n"
    ),
    "dockerhub_rebuild.py": (
        '"""Airflow DAG file for the hand-started Docker Hub rebuild; '
        'the DAG itself lives in the installed package."""\n'
        "\n"
        "from __future__ import annotations\n"
        "\n"
        "from airflow_dockerhub.dags.rebuild import create_rebuild_dag\n"
        "\n"
        "dag = create_rebuild_dag()\n"
    ),
}

COPIED = "copied"
UNCHANGED = "unchanged"
REPLACED = "replaced"


class DagFileConflictError(Exception):
    """A DAG file in the target folder differs from the bundled one and ``force`` was not given."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        names = ", ".join(str(path) for path in self.paths)
        super().__init__(f"{names}: differs from the bundled DAG file; pass --force to replace it")


@dataclass(frozen=True)
class CopyResult:
    """What :func:`copy_dag_files` did with one DAG file."""

    path: Path
    action: str


def copy_dag_files(dags_folder: str | os.PathLike[str], *, force: bool = False) -> list[CopyResult]:
    """
    Write the bundled DAG files into ``dags_folder``, creating the folder if it is missing.

    Nothing is written when a file there differs from its bundled version and ``force`` is false.
    Each file is written to a hidden temporary name first and then renamed, so Airflow never parses a
    half-written DAG file.

    :param dags_folder: the Airflow DAGs folder, e.g. ``$AIRFLOW_HOME/dags``.
    :param force: replace files that differ from the bundled versions.
    :raises DagFileConflictError: a file differs and ``force`` is false.
    :raises NotADirectoryError: ``dags_folder`` exists and is not a folder.
    """
    folder = Path(dags_folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    planned: list[CopyResult] = []
    for name, text in DAG_FILES.items():
        path = folder / name
        if not path.exists():
            planned.append(CopyResult(path, COPIED))
        elif path.is_file() and path.read_bytes() == text.encode("utf-8"):
            planned.append(CopyResult(path, UNCHANGED))
        else:
            planned.append(CopyResult(path, REPLACED))
    conflicts = [result.path for result in planned if result.action == REPLACED]
    if conflicts and not force:
        raise DagFileConflictError(conflicts)
    folder.mkdir(parents=True, exist_ok=True)
    for result in planned:
        if result.action != UNCHANGED:
            _write_atomically(result.path, DAG_FILES[result.path.name])
    return planned


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(text.encode("utf-8"))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line: copy the DAG files and print what was done with each.

    :param argv: the arguments, without the program name; ``sys.argv[1:]`` when ``None``.
    :return: the exit status: 0 when every file is in place, 1 when nothing was written.
    """
    parser = argparse.ArgumentParser(
        prog="python -m airflow_dockerhub.bundled_dags",
        description="Copy the Docker Hub provider's DAG files ("
        + ", ".join(DAG_FILES)
        + ") into an Airflow DAGs folder.",
    )
    parser.add_argument("dags_folder", type=Path, help="the DAGs folder, e.g. $AIRFLOW_HOME/dags")
    parser.add_argument(
        "--force", action="store_true", help="replace DAG files that differ from the bundled versions"
    )
    args = parser.parse_args(argv)
    try:
        results = copy_dag_files(args.dags_folder, force=args.force)
    except DagFileConflictError as error:
        for path in error.paths:
            print(
                f"refusing to overwrite {path}: it differs from the bundled DAG file; "
                "pass --force to replace it",
                file=sys.stderr,
            )
        print("nothing was written", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"cannot write the DAG files: {error}", file=sys.stderr)
        return 1
    for result in results:
        if result.action == UNCHANGED:
            print(f"unchanged {result.path} (already the bundled version)")
        else:
            print(f"{result.action} {result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
