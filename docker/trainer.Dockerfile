# A train worker (`findap train-worker`): TRL, accelerate, peft (the `train` extra) on CUDA torch.
# It runs one training job at a time over every GPU it sees (`accelerate launch` with the job's
# ddp, fsdp or deepspeed config from training/accelerate/); one container per machine.
#   docker build -f docker/trainer.Dockerfile -t findap-trainer .
#   docker build -f docker/trainer.Dockerfile --build-arg EXTRA_PACKAGES=deepspeed \
#     --build-arg CUDA_IMAGE=nvidia/cuda:12.8.1-devel-ubuntu24.04 -t findap-trainer .   # deepspeed jobs
#   docker run --gpus all --shm-size 16g -e DATABASE_URL=... -e REDIS_URL=... \
#     -v findap-files:/var/lib/findap/files -v findap-training:/var/lib/findap/training \
#     -v findap-models:/var/lib/findap/models findap-trainer
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}
ARG EXTRA_PACKAGES=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/findap PATH=/opt/findap/bin:$PATH \
    DATA_DIR=/var/lib/findap HF_HOME=/var/lib/findap/models/hf
# A C compiler and Python headers: Triton (under torch.compile and some kernels) builds at run time.
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev \
        build-essential && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/findap \
    && useradd --create-home --uid 10001 findap \
    && mkdir -p /var/lib/findap/files /var/lib/findap/training /var/lib/findap/models/hf \
    && chown -R findap:findap /var/lib/findap
WORKDIR /srv/findap
# Dependencies first (the CUDA build of the torch constraints.txt pins, which is what PyPI
# serves for Linux, and TRL's stack), so a change to the code reuses this layer.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir app workers training migrations \
    && pip install -c constraints.txt ".[train]" ${EXTRA_PACKAGES} \
    && pip uninstall -y findap
COPY app app
COPY workers workers
COPY training training
COPY migrations migrations
RUN pip install --no-deps -c constraints.txt .
USER findap
# TRAINING_DIR (checkpoints, produced models) must be the folder the GPU workers mount at the
# same path, and FILES_DIR the API's: paths are recorded in Postgres and read back by others.
CMD ["findap", "train-worker"]
