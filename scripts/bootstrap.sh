# Sourced by the other scripts: make the project's virtual environment and install the package into it.
# VENV picks the environment (default .venv); AIRFLOW_VERSION pins the Airflow release installed into
# it. Give a pinned release its own VENV, or .venv keeps that release until AIRFLOW_VERSION changes.

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$PROJECT_ROOT/.venv}"
PYTHON_BIN="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating the virtual environment in $VENV" >&2
  "$PYTHON_BIN" -m venv "$VENV"
fi

# Reinstall only when the project's metadata changed; the package itself is installed editable.
stamp="$VENV/.airflow-provider-dockerhub-installed"
wanted="$(cat "$PROJECT_ROOT/pyproject.toml")${AIRFLOW_VERSION:-}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "Installing airflow-provider-dockerhub and its dependencies (first time takes a few minutes)" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  airflow_pin=()
  if [ -n "${AIRFLOW_VERSION:-}" ]; then
    airflow_pin=("apache-airflow==$AIRFLOW_VERSION")
  fi
  "$VENV/bin/python" -m pip install --quiet -e "$PROJECT_ROOT[test]" "${airflow_pin[@]}" >&2
  printf '%s' "$wanted" > "$stamp"
fi

export PATH="$VENV/bin:$PATH"
