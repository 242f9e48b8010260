# A GPU worker: vLLM (the `gpu` extra) on CUDA; one container per GPU (or per tensor-parallel group).
#   docker build -f docker/worker-gpu.Dockerfile -t findap-worker-gpu .
#   docker run --gpus '"device=0"' -e DATABASE_URL=... -e REDIS_URL=... findap-worker-gpu \
#     findap worker --policy vllm:/models/policy --judge vllm:/models/judge
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/findap PATH=/opt/findap/bin:$PATH HF_HOME=/models/hf
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev \
        build-essential && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/findap
WORKDIR /srv/findap
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY app app
COPY workers workers
COPY training training
COPY migrations migrations
# constraints.txt pins the CPU torch wheel of the dev machines; the GPU image takes vLLM's CUDA
# torch instead, so only the pyarrow pin is applied here.
RUN grep -v '^torch' constraints.txt > /tmp/constraints-gpu.txt \
    && pip install -c /tmp/constraints-gpu.txt ".[gpu]"
VOLUME ["/models"]
CMD ["findap", "worker"]
