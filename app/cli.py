"""The `findap` command: the server's processes (up, demo, serve, worker, reaper, webhooks,
train-worker, migrate, keys) and the client's commands (app/client). Sits on top of every layer."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
import uvicorn
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from app.client.commands import register as register_client_commands
from app.client.connection import Connection
from app.client.errors import ClientError
from app.client.output import batch_table, show
from app.client.progress import BATCH_ENDED, watch_batch
from app.kernel.config import Settings, get_settings
from app.kernel.context import ProcessContext
from app.kernel.errors import ServicesNotConfiguredError
from app.kernel.logs import configure_logging
from app.kernel.queue import ModelRef
from app.launch import (
    DataFolderInUseError,
    api_in_thread,
    attached_settings,
    backing_services,
    bearer,
    train_worker_process,
    wait_until_listening,
    webhook_sender_process,
    worker_process,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

cli = typer.Typer(help="findap: distil preference pairs from a policy model and an LLM judge.")
console = Console(soft_wrap=True)
"""Lines go out whole (keys, URLs, commands to copy), never wrapped at the terminal's width,
nor at 80 columns in a pipe or a log."""

EXAMPLE_PROMPTS = Path(__file__).parent / "examples" / "finance_mc.jsonl"
GOLD_SET = Path(__file__).parent / "examples" / "gold_finance.jsonl"
DEMO_JUDGE: dict[str, Any] = {"engine": "rule"}
DEMO_OPTIONS = {
    "policy": {
        "model": "smollm2-135m-instruct",
        "samples_per_prompt": 6,
        "temperature": 1.0,
        "max_tokens": 160,
        "seed": 0,
    },
    "judge": DEMO_JUDGE,
}


class DemoScp(StrEnum):
    """Where `findap demo` gets first wrong steps."""

    JUDGE = "judge"
    ROLLOUTS = "rollouts"


DEMO_ROLLOUTS = {"scp_method": "rollouts", "rollouts_per_step": 4}
"""`findap demo --scp rollouts`: M = 4 keeps the CPU demo within minutes (M = 8 doubles it)."""


def demo_options(scp: str) -> dict[str, Any]:
    """The demo batch's options: the rule judge alone (FAP pairs), or with rollouts."""
    if scp == "judge":
        return DEMO_OPTIONS
    return {**DEMO_OPTIONS, "judge": {**DEMO_JUDGE, **DEMO_ROLLOUTS}}


def print_rollouts(batch: dict[str, Any]) -> None:
    """What the rollouts found, and how far a 135M policy's estimates can be trusted."""
    report = batch.get("rollouts")
    if report is None:
        return
    outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(report["outcomes"].items()))
    per = report["rollouts_per_labelled_answer"]
    console.print(
        f"rollouts: {report['labelled_answers']} of {report['answers_searched']} wrong answers "
        f"got a first wrong step ({outcomes or 'none searched'}); {report['rollouts']} "
        f"continuations, {'n/a' if per is None else per} per labelled answer, "
        f"{report['rollout_tokens']} tokens"
    )
    m = report["rollouts_per_step"]
    console.print(
        f"  how noisy: each estimate is the successes among {m} continuations of SmolLM2-135M. "
        "A prefix counts as good on one success, and on these 3-option questions a guessed "
        "letter succeeds about 1 time in 3, so a step is called wrong only when all "
        f"{m} continuations after it fail, and a correct-looking prefix may be good by luck. "
        "Read these SCP pairs as the mechanics; trustworthy step labels need a stronger policy "
        "or numeric questions, and --scp judge with a real judge to compare (consensus)."
    )


PolicyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--policy",
        help="ENGINE:MODEL to sample with, e.g. hf:smollm2-135m-instruct (repeatable). "
        "`up` serves these besides the configured default policy and judge; `worker` serves "
        "only the models it is given (default: the default policy and judge).",
    ),
]
JudgeOption = Annotated[
    list[str] | None,
    typer.Option("--judge", help="ENGINE:MODEL to judge with (repeatable)."),
]


def with_models(
    settings: Settings,
    policy: list[str] | None,
    judge: list[str] | None,
    *,
    add_to_defaults: bool = False,
) -> Settings:
    """Settings naming the models this process's worker serves (checked: ENGINE:MODEL); with
    `add_to_defaults` the named ones come on top of the configured (or default) ones."""
    try:
        for text in [*(policy or []), *(judge or [])]:
            ModelRef.parse(text)
    except ValueError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(code=2) from None
    if not add_to_defaults:
        update = {"policies": policy or settings.policies, "judges": judge or settings.judges}
        return settings.model_copy(update=update)
    from workers.worker import configured_models

    policies, judges = ([str(model) for model in models] for models in configured_models(settings))
    served = settings.model_copy(
        update={
            "policies": list(dict.fromkeys([*policies, *(policy or [])])),
            "judges": list(dict.fromkeys([*judges, *(judge or [])])),
        }
    )
    return offer_served_models(served)


def offer_served_models(settings: Settings) -> Settings:
    """Settings whose BASE_MODELS also hold the models this process's worker serves: the
    operator may name a folder or a hub id on the command line, and tenants may then name it
    too (only what the operator named: a request never names a folder of its own)."""
    from app.kernel.registered_models import REGISTERED_MODELS
    from workers.worker import configured_models

    policies, judges = configured_models(settings)
    served = [m.model for m in [*policies, *judges] if m.engine != "rule"]
    offered = {name: name for name in served if name not in REGISTERED_MODELS}
    return settings.model_copy(update={"base_models": {**offered, **settings.base_models}})


@contextmanager
def demo_errors() -> Iterator[None]:
    """Exit 1 with the reason when the demo's worker stopped before the work ended."""
    try:
        yield
    except ClientError as error:
        console.print(f"[red]error:[/] {error.message}")
        raise typer.Exit(code=1) from None


@contextmanager
def refused_when_in_use() -> Iterator[None]:
    """Exit 1 with the reason when another `findap up` or `demo` holds the data folder."""
    try:
        yield
    except DataFolderInUseError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(code=1) from None


@cli.command()
def up(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    policy: PolicyOption = None,
    judge: JudgeOption = None,
) -> None:
    """Run everything: Postgres, Redis (embedded if no URL is set), the API and a worker in this
    process, and a train worker beside it. The worker serves the default policy and judge, the
    named ones, and every hf model a batch asks for (trained ones included), loaded on first
    use."""
    from workers.worker import run_worker

    configure_logging()
    with (
        refused_when_in_use(),
        backing_services(
            with_metrics_token(with_models(get_settings(), policy, judge, add_to_defaults=True)),
            reclaim_running=True,
        ) as settings,
        api_in_thread(settings, host, port) as url,
        train_worker_process(settings),
        webhook_sender_process(settings),
    ):
        console.print(f"[bold green]findap is up[/] at {url}  (API docs: {url}/docs)")
        console.print(f"dashboard: {url}/dashboard")
        print_metrics_access(settings, url)
        console.print(f"data folder: {settings.data_dir.resolve()}   Ctrl-C stops everything")
        print_first_key(settings, url)
        run_worker(settings, follow_models=True)
    console.print("findap stopped")


@cli.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where to write the pairs.")] = Path(
        "data/demo-pairs.jsonl"
    ),
    port: Annotated[int, typer.Option(help="Port for the API during the demo.")] = 8765,
    scp: Annotated[
        DemoScp,
        typer.Option(
            help="judge: the rule judge makes FAP pairs only; rollouts: SmolLM2 also finishes "
            "the wrong answers' step prefixes and the rule judge checks them, for SCP pairs "
            "(slower: minutes more on CPU).",
        ),
    ] = DemoScp.JUDGE,
) -> None:
    """Distil pairs from 12 finance questions on SmolLM2 through the whole service, offline.
    It shows the batch's progress as `findap submit --wait` does; the worker's and the API's
    logs go to DATA_DIR/logs/demo.log."""
    with_rollouts = ", SCP from rollouts" if scp == "rollouts" else ""
    with refused_when_in_use(), demo_errors():
        batch, calibration = run_demo(
            get_settings(),
            port=port,
            options=demo_options(scp),
            out=out,
            described=f"12 questions x 6 samples, SmolLM2 policy, rule judge{with_rollouts}",
        )
    show(batch_table(batch))
    console.print(f"[bold]{batch['pair_counts']['total']} pairs[/] written to {out}")
    print_rollouts(batch)
    print_calibration(calibration)


DEMO_LOG = Path("logs") / "demo.log"
"""In DATA_DIR: the log of `findap demo`'s worker and API, rewritten by each demo."""
DEMO_POLL_S = 1.0


def run_demo(
    settings: Settings, *, port: int, options: dict[str, Any], out: Path, described: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Run the demo's batch and the gold set through the API and a worker process, showing
    their progress; write the batch's pairs to `out`. Returns the batch and the judge's
    calibration on the gold set."""
    with backing_services(settings, reclaim_running=True) as settings:
        # Named only once the data folder is ours: another demo's log is never cut.
        log_path = settings.data_dir / DEMO_LOG
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_bytes(b"")
        configure_logging(file=log_path)
        console.print(f"worker logs: {log_path.resolve()}")
        key = demo_key(settings)
        with (
            api_in_thread(settings, "127.0.0.1", port, log_to_root=True) as url,
            httpx.Client(base_url=url, timeout=120, headers=bearer(key)) as client,
        ):
            with EXAMPLE_PROMPTS.open("rb") as prompts:
                response = client.post(
                    "/v1/batches",
                    files={"file": ("finance_mc.jsonl", prompts, "application/jsonl")},
                    data={"options": json.dumps(options)},
                )
            response.raise_for_status()
            batch_id = response.json()["id"]
            console.print(f"submitted {batch_id}: {described}")
            gold_id = submit_gold_set(client, DEMO_JUDGE)
            console.print(f"submitted {gold_id}: the shipped gold set, judge only, to calibrate it")
            with (
                worker_process(settings, log_path) as worker,
                WorkerWatchedConnection(url=url, key=key, worker=worker, log_path=log_path) as api,
            ):
                wait_until_listening(settings, worker)
                console.print("calibrating the judge on the gold set:")
                calibration = watch_batch(api, gold_id, interval_s=DEMO_POLL_S, console=console)
                console.print(f"distilling {batch_id}:")
                batch = watch_batch(api, batch_id, interval_s=DEMO_POLL_S, console=console)
            out.parent.mkdir(parents=True, exist_ok=True)
            with (
                out.open("wb") as file,
                client.stream("GET", f"/v1/batches/{batch_id}/pairs") as pairs,
            ):
                for data in pairs.iter_bytes():
                    file.write(data)
    return batch, calibration["calibration"]


class WorkerWatchedConnection(Connection):
    """The demo's polls, which fail naming the worker's log once the worker has stopped and
    the work it was to do has not ended (instead of waiting for it for ever)."""

    def __init__(
        self, *, url: str, key: str, worker: subprocess.Popen[bytes], log_path: Path
    ) -> None:
        super().__init__(url=url, key=key)
        self.worker = worker
        self.log_path = log_path

    def get(self, path: str, **params: Any) -> Any:
        # Looked at before the poll: a worker that ended after finishing its work has the
        # work's end in the answer.
        stopped = self.worker.poll()
        found = super().get(path, **params)
        if stopped is not None and found.get("status") not in BATCH_ENDED:
            raise ClientError(
                f"the demo's worker stopped (exit code {stopped}) before {path} ended; "
                f"its log: {self.log_path.resolve()}"
            )
        return found


def submit_gold_set(client: httpx.Client, judge: dict[str, Any]) -> str:
    """Queue the shipped gold set's answers for this judge alone; return the batch id."""
    with GOLD_SET.open("rb") as answers:
        response = client.post(
            "/v1/batches",
            files={"file": ("gold_finance.jsonl", answers, "application/jsonl")},
            data={"options": json.dumps({"judge": judge})},
        )
    response.raise_for_status()
    return str(response.json()["id"])


def print_calibration(calibration: dict[str, Any] | None) -> None:
    """The judge's figures on the gold set, in one or two lines."""
    if calibration is None:
        console.print("judge calibration: no gold answer was judged")
        return
    fap = calibration["fap"]
    console.print(
        f"judge calibration on {fap['n']} gold answers: final answer accuracy "
        f"{fap['accuracy']:.2f}, precision {percent(fap['precision'])}, "
        f"recall {percent(fap['recall'])} (of 'wrong')"
    )
    scp = calibration["scp"]
    if scp is not None:
        console.print(
            f"  first wrong step: {percent(scp['wrong_accuracy'])} on wrong answers, "
            f"{percent(scp['correct_accuracy'])} of correct ones left alone, "
            f"F1 {percent(scp['f1'])}"
        )
    for note in calibration["notes"]:
        console.print(f"  {note}")


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def print_first_key(settings: Settings, url: str) -> None:
    """While the project `default` has no usable key, make one and show it, once."""
    from app.services.api_keys import create_key, has_live_key

    with ProcessContext.open(settings) as context, context.session_factory.begin() as session:
        exists = has_live_key(session, project="default")
        secret = None if exists else create_key(session, project="default").secret
    if secret is None:
        console.print("API keys: use yours, or make one with `findap keys create --project NAME`")
        return
    console.print(f"first API key (project default), shown only now: [bold]{secret}[/]")
    console.print(f"  curl -H 'Authorization: Bearer {secret}' {url}/v1/batches")
    console.print(f"  findap login --url {url} --key {secret}   # then: findap submit …")


METRICS_TOKEN_FILE = "metrics_token"
"""In DATA_DIR: the METRICS_TOKEN `findap up` made, kept for its next start."""


def with_metrics_token(settings: Settings) -> Settings:
    """Settings with a METRICS_TOKEN: the one set, else the one `up` keeps in its data folder
    (made on first start, readable by its owner only)."""
    if settings.metrics_token is not None:
        return settings
    path = settings.data_dir / METRICS_TOKEN_FILE
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32))
    return settings.model_copy(update={"metrics_token": SecretStr(path.read_text().strip())})


def print_metrics_access(settings: Settings, url: str) -> None:
    """Where /metrics is and the token it asks for (the operator's; tenants' keys do not work)."""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    console.print(f"metrics: {url}/metrics  with  Authorization: Bearer {token}")


def demo_key(settings: Settings) -> str:
    """The demo acts as its own project, `demo`, with a fresh key (its hash is all that stays)."""
    from app.services.api_keys import issue_key

    return issue_key(settings, project="demo", name="findap demo")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes.")] = 1,
) -> None:
    """Serve the API against DATABASE_URL and REDIS_URL."""
    configure_logging()
    uvicorn.run(
        "app.main:app_from_environment", factory=True, host=host, port=port, workers=workers
    )


@cli.command()
def worker(
    policy: PolicyOption = None,
    judge: JudgeOption = None,
    burst: Annotated[bool, typer.Option(help="Exit when its queues are empty.")] = False,
    all_models: Annotated[
        bool,
        typer.Option(
            "--all-models",
            help="Also serve every model queued for this worker's local engines (hf, vllm), "
            "e.g. newly trained ones, loaded on first use.",
        ),
    ] = False,
) -> None:
    """Serve the named models from REDIS_URL's queues, writing to DATABASE_URL (unset: those of
    the `findap up` running on DATA_DIR)."""
    from workers.worker import run_worker

    configure_logging()
    settings = with_models(require_urls(attached_settings(get_settings())), policy, judge)
    run_worker(settings, burst=burst, follow_models=all_models)


@cli.command()
def reaper(
    once: Annotated[bool, typer.Option(help="One pass, then exit.")] = False,
) -> None:
    """Re-enqueue chunks whose lease expired or that Redis lost, and finish batches with no
    open chunk; every REAPER_INTERVAL_S (each worker also runs one)."""
    from workers.reaper import run_reaper

    configure_logging()
    reaped = run_reaper(require_urls(attached_settings(get_settings())), once=once)
    if reaped is not None:
        console.print(
            f"{reaped.expired} expired chunk(s) queued again, {reaped.failed} failed, "
            f"{reaped.enqueued} enqueued, {reaped.settled} batch(es) settled"
        )


@cli.command()
def webhooks(
    once: Annotated[bool, typer.Option(help="Send what is due now, then exit.")] = False,
) -> None:
    """Send webhooks from the outbox, signed, retried with backoff for a day
    (WEBHOOK_RETRY_DELAYS_S); `findap up` runs one beside the API. Any number may run."""
    from workers.webhooks import run_webhook_sender

    configure_logging()
    tried = run_webhook_sender(
        require_urls(attached_settings(get_settings()), redis=False), once=once
    )
    console.print(f"{tried} webhook delivery attempt(s)")


@cli.command("train-worker")
def train_worker(
    burst: Annotated[bool, typer.Option(help="Exit when the training queue is empty.")] = False,
    name: Annotated[str | None, typer.Option(help="Worker name (default host:pid).")] = None,
) -> None:
    """Run training jobs from REDIS_URL's training queue, one at a time, writing to DATABASE_URL."""
    from training.supervisor import run_train_worker

    configure_logging()
    run_train_worker(require_urls(get_settings()), burst=burst, name=name)


keys = typer.Typer(help="API keys: each belongs to a project and sees only its data.")
cli.add_typer(keys, name="keys")


@keys.command("create")
def keys_create(
    project: Annotated[str, typer.Option(help="The project's name; made if new.")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "default",
) -> None:
    """Make a key for a project and print it: it is shown this once, only its hash is kept."""
    from pydantic import ValidationError

    from app.schemas.api_key import ApiKeyCreate
    from app.services.api_keys import create_key
    from app.services.uploads import describe_validation_error

    try:
        ApiKeyCreate(project=project, name=name)
    except ValidationError as error:
        console.print(f"[red]{describe_validation_error(error)}[/]")
        raise typer.Exit(code=1) from None

    with key_session() as session:
        made = create_key(session, project=project, name=name)
        console.print(f"{made.key.id}  project {project}  name {name}")
    print(made.secret)


@keys.command("list")
def keys_list() -> None:
    """Every key: id, project, name, first characters, when made, and whether revoked."""
    from app.services.api_keys import list_keys

    table = Table("id", "project", "name", "prefix", "created", "revoked")
    with key_session() as session:
        for key, project in list_keys(session):
            revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else ""
            created = key.created_at.isoformat(timespec="seconds")
            table.add_row(key.id, project, key.name, key.prefix + "…", created, revoked)
    show(table)  # off a terminal at its full width: ids never cut


@keys.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")]) -> None:
    """Revoke a key: requests with it answer 403 from now on."""
    from app.kernel.errors import NotFoundError
    from app.services.api_keys import revoke_key

    try:
        with key_session() as session:
            revoke_key(session, key_id)
    except NotFoundError as error:
        console.print(f"[red]{error.detail}[/]")
        raise typer.Exit(code=1) from None
    console.print(f"{key_id} revoked")


@contextmanager
def key_session() -> Iterator[Session]:
    """A transaction on DATABASE_URL, or on the embedded database (`findap up`'s) when unset."""
    from app.kernel.db.migrate import upgrade_database

    settings, server = get_settings(), None
    if not settings.database_url:
        from app.embedded import start_embedded_postgres

        database_url, server = start_embedded_postgres(settings.data_dir)
        settings = settings.model_copy(update={"database_url": database_url})
    upgrade_database(settings.require_database_url())
    try:
        with ProcessContext.open(settings) as context, context.session_factory.begin() as session:
            yield session
    finally:
        if server is not None:
            server.cleanup()


@cli.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations to DATABASE_URL (a revision below the current one downgrades)."""
    from app.kernel.db.migrate import downgrade_database, upgrade_database

    database_url = require_urls(get_settings(), redis=False).require_database_url()
    if revision == "base" or revision.startswith("-"):
        downgrade_database(database_url, revision)
    else:
        upgrade_database(database_url, revision)
    console.print(f"database at {revision}")


def require_urls(settings: Settings, *, redis: bool = True) -> Settings:
    """The settings, when they name the servers a separate process needs; else exit 2."""
    try:
        settings.require_urls(redis=redis)
    except ServicesNotConfiguredError as error:
        console.print(f"[red]error:[/] {error.detail}")
        raise typer.Exit(code=2) from None
    return settings


register_client_commands(cli)

if __name__ == "__main__":
    cli()
