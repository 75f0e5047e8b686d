# Sourced by the scripts in this folder: make .venv exist with chaoskit installed (editable, dev extras).
# Re-installs only when pyproject.toml changed since the last install, so repeated runs start fast.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.chaoskit-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    echo "setting up $venv (first run only; pip output in $venv/install.log)" >&2
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    if ! { "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
           "$venv/bin/python" -m pip install --disable-pip-version-check -e "$root[dev]"; } \
           > "$venv/install.log" 2>&1; then
        tail -n 30 "$venv/install.log" >&2
        echo "installing chaoskit into $venv failed (full log: $venv/install.log)" >&2
        exit 1
    fi
    touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$root"
