# A GPU worker (`findap worker`): vLLM (the `gpu` extra) on CUDA; one container per GPU, or per
# tensor-parallel group (ENGINE_OPTIONS='{"vllm": {"tensor_parallel_size": 2}}' over two GPUs).
#   docker build -f docker/worker-gpu.Dockerfile -t findap-worker-gpu .
#   docker run --gpus '"device=0"' --shm-size 8g -e DATABASE_URL=... -e REDIS_URL=... \
#     -v findap-models:/var/lib/findap/models -v findap-training:/var/lib/findap/training \
#     findap-worker-gpu findap worker --policy vllm:Qwen/Qwen2.5-7B-Instruct --judge openai:gpt-4o
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/findap PATH=/opt/findap/bin:$PATH \
    DATA_DIR=/var/lib/findap HF_HOME=/var/lib/findap/models/hf DEVICE=cuda
# A C compiler and Python headers: Triton (under vLLM) compiles small kernels' launchers at run time.
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev \
        build-essential && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/findap \
    && useradd --create-home --uid 10001 findap \
    && mkdir -p /var/lib/findap/files /var/lib/findap/training /var/lib/findap/models/hf \
    && chown -R findap:findap /var/lib/findap
WORKDIR /srv/findap
# Dependencies first (several GB: vLLM and the CUDA build of the torch constraints.txt pins,
# which is what PyPI serves for Linux), so a change to the code reuses this layer.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir app workers training migrations && pip install -c constraints.txt ".[gpu]" \
    && pip uninstall -y findap
COPY app app
COPY workers workers
COPY training training
COPY migrations migrations
RUN pip install --no-deps -c constraints.txt .
USER findap
# The models this worker serves: --policy/--judge ENGINE:MODEL, or POLICIES/JUDGES (JSON lists).
CMD ["findap", "worker"]
