"""Service settings, read from the environment (and a .env file) by pydantic-settings."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.kernel.errors import ServicesNotConfiguredError


class Settings(BaseSettings):
    """Everything configurable about a findap process; unset URLs mean the embedded services."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None, description="Postgres URL; unset starts an embedded Postgres (findap up)."
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL; unset starts an embedded Redis (findap up)."
    )
    data_dir: Path = Field(
        default=Path("data"), description="Embedded databases, converted models, downloads."
    )
    models_dir: Path = Field(
        default=Path("data/models"),
        description="Converted and downloaded models; defaults to <data_dir>/models.",
    )
    files_dir: Path = Field(
        default=Path("data/files"),
        description="Uploaded training files; defaults to <data_dir>/files.",
    )
    training_dir: Path = Field(
        default=Path("data/training"),
        description="Training jobs' checkpoints and produced models; defaults to "
        "<data_dir>/training. Workers that sample from produced models must see it too.",
    )
    base_models: dict[str, str] = Field(
        default_factory=dict,
        description='Base models offered for training, as JSON {"name": "folder or hub id"}.',
    )
    training_heartbeat_timeout_s: int = Field(
        default=600,
        ge=10,
        description="A running training job whose train worker stopped renewing its heartbeat "
        "this long ago is marked failed.",
    )
    training_max_wall_s: float = Field(
        default=72 * 3600,
        ge=1,
        description="Wall-clock limit of one training job: past it the train worker stops the "
        "trainer and marks the job failed (its last checkpoint named).",
    )
    training_output_grace_s: float = Field(
        default=7 * 24 * 3600,
        ge=0,
        description="How long a failed or cancelled training job's output folder (checkpoints, "
        "log) is kept after it ended; a train worker's reconciler then removes it.",
    )
    max_training_steps: int = Field(
        default=1_000_000,
        ge=1,
        description="Most optimizer steps of one training job (epochs x the data's batches, or "
        "max_steps): 422 past it.",
    )
    max_training_length: int = Field(
        default=32_768,
        ge=16,
        le=1_048_576,
        description="Largest hyperparameters.max_length of a training job, in tokens.",
    )
    max_open_training_jobs_per_project: int = Field(
        default=20,
        ge=1,
        description="Training jobs a project may have queued or running at once: 429 past it.",
    )
    max_file_bytes_per_project: int = Field(
        default=20 * 1024**3,
        ge=1,
        description="Bytes of uploaded training files a project may keep: an upload that would "
        "pass it is refused with 413 (delete files to make room).",
    )
    queue_name: str = Field(
        default="findap",
        description="Prefix of the RQ queues: <prefix>:<sample|judge>:<engine>:<model>.",
    )
    policies: list[str] = Field(
        default_factory=list,
        description="ENGINE:MODEL this worker samples with; default: the default policy.",
    )
    judges: list[str] = Field(
        default_factory=list,
        description="ENGINE:MODEL this worker judges with; default: the default judge.",
    )
    chunk_size: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Prompts per work chunk of a batch that does not set chunk_size (at most; "
        "a small batch is spread over about eight chunks). At least MIN_CHUNK_SIZE.",
    )
    min_chunk_size: int = Field(
        default=8,
        ge=1,
        le=10_000,
        description="Fewest prompts per chunk a batch may ask for (chunk_size): each chunk is "
        "a queued job and an engine call, so tiny chunks cost Redis and the GPU more than "
        "they give.",
    )
    max_queued_chunks_per_project: int = Field(
        default=10_000,
        ge=1,
        description="Chunks a project may have queued or running at once, over all its "
        "batches: a batch that would pass it gets 429 (one that alone passes it, 422).",
    )
    queued_job_ttl_s: int = Field(
        default=24 * 3600,
        ge=10,
        description="How long a chunk's job waits in Redis unclaimed before it expires; the "
        "reaper then sends it again while Postgres has the chunk queued, so nothing accepted "
        "is lost, and a job Postgres no longer wants does not stay in Redis.",
    )
    chunk_timeout_s: int = Field(default=3600, ge=10, description="RQ job timeout per chunk.")
    chunk_lease_s: float = Field(
        default=60,
        ge=1,
        description="Lease of a running chunk; its worker renews it every third of this. A chunk "
        "whose lease runs out (its worker was killed or hung) goes back to the queue.",
    )
    chunk_max_attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Runs of a chunk's stage (failed or cut off) before it is marked failed.",
    )
    reaper_interval_s: float = Field(
        default=30,
        ge=0.5,
        description="How often each worker's reaper re-enqueues expired and lost chunks.",
    )
    webhooks_allow_private_urls: bool = Field(
        default=False,
        description="Let webhooks go to private, loopback and link-local addresses (a receiver "
        "on this machine or this network). Off, such URLs are refused with a 422 and checked "
        "again before every send.",
    )
    max_webhooks_per_project: int = Field(
        default=20,
        ge=1,
        description="Webhook endpoints one project may have: each event is sent to each "
        "subscribed one. 409 past it.",
    )
    webhook_timeout_s: float = Field(
        default=10, gt=0, le=300, description="How long one webhook POST may take."
    )
    webhook_retry_delays_s: list[float] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        min_length=1,
        description="Waits before each retry of a webhook the receiver did not take (no 2xx), "
        "as JSON; after the last the delivery is failed. The default is Standard Webhooks' "
        "schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (just over a day).",
    )
    webhook_poll_interval_s: float = Field(
        default=1, gt=0, description="How often `findap webhooks` looks for due deliveries."
    )
    webhook_log_days: float = Field(
        default=30,
        gt=0,
        description="How long a delivered or failed webhook delivery stays in the delivery log "
        "(with its attempts); `findap webhooks` deletes older ones once an hour. Pending ones "
        "are kept whatever their age.",
    )
    db_retry_s: float = Field(
        default=120,
        ge=0,
        description="How long a worker retries a database read or write that lost its "
        "connection (Postgres restarting) before it gives the chunk up to its lease. It may "
        "outlast the lease: a worker that could not renew its lease for CHUNK_LEASE_S makes "
        "no further model call for that chunk (another worker may have it by then).",
    )
    default_policy_model: str = "smollm2-135m-instruct"
    default_policy_engine: str = "hf"
    default_judge_model: str = "smollm2-135m-instruct"
    default_judge_engine: str = "hf"
    device: str = Field(default="cpu", description="Device for the hf engine: cpu, cuda, cuda:1.")
    engine_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-engine keyword arguments for this worker, as JSON: "
        '{"vllm": {"max_model_len": 4096}, "openai": {"base_url": "http://host:8000/v1"}}.',
    )
    max_loaded_models: int = Field(
        default=4,
        ge=1,
        le=100,
        description="Models a worker keeps loaded at most; before loading another it unloads "
        "the least recently used (also when free memory is under twice the new model's weight "
        "files).",
    )
    judge_retries: int = Field(
        default=2, ge=0, le=10, description="Extra judge calls for replies that did not parse."
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the /v1/admin routes (API keys); unset turns them off.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token /metrics asks for; unset turns /metrics off (403). "
        "`findap up` makes one in its data folder when unset.",
    )
    max_prompts_per_batch: int = Field(default=200_000, ge=1)
    max_upload_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="Largest request body (JSON or upload), counted as it streams in: 413 past it.",
    )
    max_question_chars: int = Field(default=20_000, ge=1, le=100_000)
    max_samples_per_prompt: int = Field(default=32, ge=1, le=1024)
    max_tokens: int = Field(
        default=4096, ge=16, le=131_072, description="Largest max_tokens of a policy or judge."
    )
    max_open_batches_per_project: int = Field(
        default=50,
        ge=1,
        description="Batches a project may have queued or in progress at once: 429 past it.",
    )
    downloads_per_project: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="Pairs and dataset downloads a project may stream at once, over all API "
        "processes: 429 with Retry-After past it.",
    )
    db_pool_size: int = Field(
        default=5, ge=1, le=1000, description="Database connections each process keeps open."
    )
    db_max_overflow: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="Connections a process may open beyond DB_POOL_SIZE under load.",
    )
    db_pool_timeout_s: float = Field(
        default=10,
        gt=0,
        le=300,
        description="How long a request waits for a free database connection before it is "
        "answered 503 with Retry-After.",
    )
    api_key_cache_s: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="How long an API process trusts a key it found live without asking the "
        "database again: a key revoked elsewhere keeps working there this long at most. "
        "0 checks every request.",
    )

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, url: str | None) -> str | None:
        """Use the psycopg 3 driver for plain postgres:// URLs."""
        if url is None:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @model_validator(mode="after")
    def _chunk_size_at_least_the_minimum(self) -> Settings:
        if self.chunk_size < self.min_chunk_size:
            raise ValueError(
                f"CHUNK_SIZE ({self.chunk_size}) must be at least MIN_CHUNK_SIZE "
                f"({self.min_chunk_size})"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _folders_under_data_dir(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data_dir = Path(data.get("data_dir") or "data")
        return {
            **data,
            "models_dir": data.get("models_dir") or data_dir / "models",
            "files_dir": data.get("files_dir") or data_dir / "files",
            "training_dir": data.get("training_dir") or data_dir / "training",
        }

    def require_urls(self, *, redis: bool = True) -> None:
        """Refuse to go on without the servers a separate process needs (`findap up` embeds
        them instead); the one place that says which variable is missing."""
        missing = [
            name
            for name, value in (("DATABASE_URL", self.database_url), ("REDIS_URL", self.redis_url))
            if not value and (redis or name == "DATABASE_URL")
        ]
        if missing:
            raise ServicesNotConfiguredError(
                f"{' and '.join(missing)} not set (set them, run this in the folder of a "
                "running `findap up` to join it, or use `findap up`)"
            )

    def require_database_url(self) -> str:
        """DATABASE_URL, or ServicesNotConfiguredError when unset."""
        self.require_urls(redis=False)
        assert self.database_url is not None
        return self.database_url

    def require_redis_url(self) -> str:
        """REDIS_URL, or ServicesNotConfiguredError when unset."""
        if not self.redis_url:
            raise ServicesNotConfiguredError("REDIS_URL not set (set it, or use `findap up`)")
        return self.redis_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
