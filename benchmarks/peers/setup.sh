#!/usr/bin/env bash
# Create benchmarks/.venv-peers with the peer toolkits (flair, spaCy) for benchmarks/conll03.py.
# Idempotent: a marker file holding the hash of requirements.txt + this script skips the work
# when nothing changed. Non-interactive. Usage: bash benchmarks/peers/setup.sh [--force]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/benchmarks/.venv-peers"
marker="$venv/.peers-installed"
python="${PEERS_PYTHON:-python3.11}"

stamp="$(cat "$here/requirements.txt" "$here/setup.sh" | sha256sum | cut -d' ' -f1)"
if [[ "${1:-}" != "--force" && -f "$marker" && "$(cat "$marker")" == "$stamp" ]]; then
    echo "peers venv up to date: $venv"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --no-input --progress-bar off)
"${pip[@]}" --upgrade pip wheel
# torch FIRST and alone: this machine serves a CPU build from a local wheel; if flair were
# resolved first, pip could pick a CUDA torch and several GB of nvidia-* packages.
"${pip[@]}" "$(grep -E '^torch==' "$here/requirements.txt")"
# Then the rest, with torch held at the installed version.
"${pip[@]}" -r "$here/requirements.txt"
# Fail now rather than mid-benchmark if an import is broken.
"$venv/bin/python" - <<'PY'
import flair, spacy, torch
print(f"torch {torch.__version__} (cuda={torch.cuda.is_available()}), "
      f"flair {flair.__version__}, spacy {spacy.__version__}")
PY
echo "$stamp" > "$marker"
echo "peers venv ready: $venv"
