"""Dashboard pages: batches with live progress, a batch's counts and answers, its pairs,
training jobs with their charts, datasets, models, and webhooks with their delivery log.
Server-rendered from the same services as the API, scoped to the project of the key in the
cookie."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from sqlalchemy.orm import Session

from app.api.deps import RedisDep, SessionDep, SettingsDep
from app.dashboard.auth import (
    COOKIE_PATH,
    LOGIN_NOTICES,
    DashboardProject,
    PollingProject,
    forget_key,
    safe_next,
    store_key,
)
from app.dashboard.charts import job_charts
from app.dashboard.comparison import compare, unfinished_evaluations
from app.dashboard.csrf import (
    SIGN_IN_COOKIE,
    csrf_field,
    new_sign_in_nonce,
    page_token,
)
from app.dashboard.highlight import answer_spans
from app.dashboard.queries import (
    answers_of,
    disagreements,
    job_events,
    pair_rows,
    prompt_at,
    prompt_rows,
)
from app.dashboard.security import GUARDS
from app.kernel.answers import segment_steps
from app.kernel.errors import FindapError, NotFoundError
from app.kernel.models import Project
from app.kernel.models.statuses import TERMINAL_BATCH_STATUSES, BatchStatus
from app.schemas.batch import BatchOut
from app.services import batches as batch_service
from app.services import datasets as dataset_service
from app.services import models as model_service
from app.services import training_jobs as job_service
from app.services import webhooks as webhook_service
from app.services.api_keys import project_of_key

HERE = Path(__file__).parent
STATIC_FILES = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
PAGE_SIZE = 20
PROMPTS_PER_PAGE = 50
MODELS_PER_PAGE = 50

# Every state-changing request (a POST) must come from the dashboard's own pages, with the
# page's CSRF token.
router = APIRouter(prefix="/dashboard", include_in_schema=False, dependencies=GUARDS)
templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(HERE / "templates"),
        # Answers, questions and judge replies are model or user text: escape all of it.
        autoescape=select_autoescape(default=True),
    )
)


def figure(value: Any) -> str:
    """A number as a person reads it: four significant digits (large floats such as FLOPs in
    e-notation), whole numbers whole with thousands grouped; yes or no for a flag; a setting
    made of settings (early_stopping) as `name value` pairs, a list as its items."""
    if isinstance(value, dict):
        return ", ".join(f"{name} {figure(item)}" for name, item in value.items()) or "—"
    if isinstance(value, list | tuple):
        return ", ".join(figure(item) for item in value) or "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


templates.env.filters["figure"] = figure
# In a form: {{ csrf_field() }}; for a script's fetch(): the page's <meta name="csrf-token">.
templates.env.globals["csrf_field"] = pass_context(lambda context: csrf_field(context["request"]))
templates.env.globals["csrf_token"] = pass_context(lambda context: page_token(context["request"]))

PAGE_NOTICES = {
    "cancelled": "Cancelled.",
    "cancelling": "Cancelling: nothing new starts; work already running finishes and keeps "
    "its results.",
}
"""What a page says after a redirect, by its `notice` query value (the login page has its own)."""


def batch_cancellable(status: str) -> bool:
    """Whether a batch or an evaluation in this status shows its Cancel button."""
    return status not in TERMINAL_BATCH_STATUSES and status != BatchStatus.CANCELLING


templates.env.tests["cancellable"] = batch_cancellable

HYPERPARAMETER_ORDER = (
    "learning_rate",
    "beta",
    "nll_weight",
    "loss_type",
    "max_steps",
    "epochs",
    "batch_size",
    "gradient_accumulation",
    "warmup_ratio",
    "lr_scheduler",
    "max_length",
    "weight_decay",
    "packing",
    "cpt_ratio",
)
"""What decides a run first: the method's learning rate and DPO's beta, how long, how big a batch;
the rest (eval split, checkpoints, seed, settings added later) after these."""


def hyperparameter_rows(hyperparameters: dict[str, Any]) -> list[tuple[str, Any, str | None]]:
    """(name, value, note) in HYPERPARAMETER_ORDER; a note where a setting has no effect."""
    rank = {name: position for position, name in enumerate(HYPERPARAMETER_ORDER)}
    names = sorted(hyperparameters, key=lambda name: rank.get(name, len(rank)))
    overridden = (
        {"epochs": "max_steps overrides epochs"} if hyperparameters.get("max_steps") else {}
    )
    return [(name, hyperparameters[name], overridden.get(name)) for name in names]


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    context.setdefault("page_notice", PAGE_NOTICES.get(request.query_params.get("notice", "")))
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def missing(request: Request, error: NotFoundError, project: str | None) -> HTMLResponse:
    return render(request, "not_found.html", status_code=404, detail=error.detail, project=project)


def project_name(session: SessionDep, project_id: str) -> str:
    project = session.get(Project, project_id)
    return project.name if project is not None else project_id


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    """The dashboard's one stylesheet and one script."""
    if name not in STATIC_FILES:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(HERE / "static" / name, media_type=STATIC_FILES[name])


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, next: str | None = None, notice: str | None = None
) -> HTMLResponse:
    return sign_in_page(
        request, next=safe_next(next), notice=LOGIN_NOTICES.get(notice or ""), error=None
    )


def sign_in_page(request: Request, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The sign-in form, its token bound to a cookie of its own (there is no session yet)."""
    nonce = request.cookies.get(SIGN_IN_COOKIE) or new_sign_in_nonce()
    request.state.csrf_nonce = nonce
    response = render(request, "login.html", status_code=status_code, **context)
    response.set_cookie(
        SIGN_IN_COOKIE,
        nonce,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/login", response_model=None)
def login(
    request: Request,
    session: SessionDep,
    key: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/dashboard",
) -> Response:
    """A usable key goes into the cookie; any other gets the form again, saying why."""
    key = key.strip()
    try:
        project_of_key(session, key)
    except FindapError as error:
        message = "Paste an API key (fdp_…)." if not key else f"Not signed in: {error.detail}."
        return sign_in_page(
            request, status_code=401, next=safe_next(next), notice=None, error=message
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    secure = request.url.scheme == "https"
    store_key(response, key, secure=secure)
    # Signed in, pages carry the session's token: the sign-in form's is spent.
    response.delete_cookie(SIGN_IN_COOKIE, path=COOKIE_PATH, httponly=True, secure=secure)
    return response


@router.post("/logout")
def logout(request: Request) -> RedirectResponse:
    """Forget the key (a POST from the page's Sign out button: a link could be followed by any
    site or prefetched)."""
    response = RedirectResponse("/dashboard/login?notice=signed_out", status_code=303)
    forget_key(response, secure=request.url.scheme == "https")
    return response


def progress(batch: BatchOut) -> dict[str, Any]:
    """What a progress bar shows of a batch; the page's script polls it while the batch runs."""
    counts = batch.request_counts
    done = counts.completed + counts.failed
    running = batch.progress  # the work inside running chunks, as their workers report it
    worth_done = done + (running.prompts_fraction if running else 0.0)
    return {
        "status": batch.status,
        "done": done,
        "completed": counts.completed,
        "failed": counts.failed,
        "total": counts.total,
        "percent": min(100, round(100 * worth_done / counts.total)) if counts.total else 0,
        "samples": batch.sample_count + (running.samples_generated if running else 0),
        "pairs": batch.pair_counts.get("total", 0),
        "tokens_per_s": round(running.tokens_per_s) if running else 0,
        "notes": batch.notes,
        "finished": batch.status in TERMINAL_BATCH_STATUSES,
    }


@router.get("", response_class=HTMLResponse)
def batches_page(
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: DashboardProject,
    after: str | None = None,
) -> HTMLResponse:
    """The project's batches, newest first, with live progress bars."""
    try:
        batches, has_more = batch_service.list_summaries(
            session,
            project_id=project,
            limit=PAGE_SIZE,
            after=after,
            redis=redis,
            queue_prefix=settings.queue_name,
        )
    except NotFoundError as error:
        return missing(request, error, project_name(session, project))
    return render(
        request,
        "batches.html",
        project=project_name(session, project),
        batches=[(batch, progress(batch)) for batch in batches],
        next_after=batches[-1].id if has_more and batches else None,
    )


@router.get("/progress")
def batches_progress(
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: PollingProject,
    batch: Annotated[list[str], Query(max_length=100)],
) -> dict[str, Any]:
    """Progress of these batches of the project (others are left out), for the live bars."""
    found: dict[str, Any] = {}
    for batch_id in batch:
        try:
            summary = batch_service.get_summary(
                session, batch_id, project_id=project, redis=redis, queue_prefix=settings.queue_name
            )
        except NotFoundError:
            continue
        found[batch_id] = progress(summary)
    return {"batches": found}


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_page(
    request: Request,
    batch_id: str,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: DashboardProject,
    start: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> HTMLResponse:
    """Status, models, counts, tokens and errors of one batch, and its prompts."""
    try:
        batch = batch_service.get_summary(
            session, batch_id, project_id=project, redis=redis, queue_prefix=settings.queue_name
        )
    except NotFoundError as error:
        return missing(request, error, project_name(session, project))
    prompts = prompt_rows(session, batch_id, start=start, limit=PROMPTS_PER_PAGE + 1)
    return render(
        request,
        "batch.html",
        project=project_name(session, project),
        batch=batch,
        live=progress(batch),
        prompts=prompts[:PROMPTS_PER_PAGE],
        start=start,
        next_start=start + PROMPTS_PER_PAGE if len(prompts) > PROMPTS_PER_PAGE else None,
        previous_start=max(start - PROMPTS_PER_PAGE, 0) if start else None,
    )


@router.get("/batches/{batch_id}/prompts/{index}", response_class=HTMLResponse)
def sample_viewer(
    request: Request,
    batch_id: str,
    index: Annotated[int, PathParam(ge=0, le=2**31 - 1)],
    session: SessionDep,
    project: DashboardProject,
    came_from: Annotated[Literal["queue"] | None, Query(alias="from")] = None,
) -> HTMLResponse:
    """One question, its K answers with their verdicts, where each wrong one went wrong, and a
    form to review each."""
    return sample_viewer_page(
        request, session, batch_id, index, project=project, from_queue=came_from == "queue"
    )


def sample_viewer_page(
    request: Request,
    session: Session,
    batch_id: str,
    index: int,
    *,
    project: str,
    errors: dict[int, str] | None = None,
    status_code: int = 200,
    from_queue: bool = False,
) -> HTMLResponse:
    """The sample viewer; `errors`: a review's problem, by answer, shown under its form."""
    try:
        batch = batch_service.get_batch(session, batch_id, project_id=project)
        prompt = prompt_at(session, batch_id, index)
    except NotFoundError as error:
        return missing(request, error, project_name(session, project))
    answers = answers_of(session, prompt)
    next_index = index + 1 if index + 1 < batch.total_prompts else None
    if from_queue:
        next_url = f"/dashboard/batches/{batch_id}/review-queue"
    elif next_index is not None:
        next_url = f"/dashboard/batches/{batch_id}/prompts/{next_index}"
    else:
        next_url = None
    return render(
        request,
        "prompt.html",
        status_code=status_code,
        project=project_name(session, project),
        batch=batch,
        prompt=prompt,
        answers=[
            (answer, answer_spans(answer.text, answer.scp), segment_steps(answer.text))
            for answer in answers
        ],
        errors=errors or {},
        from_queue=from_queue,
        next_url=next_url,
        previous_index=index - 1 if index > 0 else None,
        next_index=next_index,
    )


GOLD_ANSWERS_SHOWN = 2000


@router.get("/batches/{batch_id}/disagreements", response_class=HTMLResponse)
def disagreements_page(
    request: Request, batch_id: str, session: SessionDep, project: DashboardProject
) -> HTMLResponse:
    """The gold-labelled answers where the judge's verdict or first wrong step differs."""
    try:
        batch = batch_service.get_batch(session, batch_id, project_id=project)
    except NotFoundError as error:
        return missing(request, error, project_name(session, project))
    rows, capped = disagreements(session, batch_id, limit=GOLD_ANSWERS_SHOWN)
    return render(
        request,
        "disagreements.html",
        project=project_name(session, project),
        batch=batch,
        rows=rows,
        capped=capped,
        limit=GOLD_ANSWERS_SHOWN,
    )


@router.get("/batches/{batch_id}/pairs", response_class=HTMLResponse)
def pairs_page(
    request: Request,
    batch_id: str,
    session: SessionDep,
    project: DashboardProject,
    kind: Literal["fap", "scp", ""] = "",
    prompt: Annotated[str, Query(max_length=256)] = "",
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> HTMLResponse:
    """The batch's pairs, filtered by kind and by prompt, a page at a time."""
    try:
        batch = batch_service.get_batch(session, batch_id, project_id=project)
    except NotFoundError as error:
        return missing(request, error, project_name(session, project))
    pairs, has_more = pair_rows(
        session,
        batch_id,
        kind=kind or None,
        prompt=prompt.strip() or None,
        after=after,
        limit=PAGE_SIZE,
    )
    return render(
        request,
        "pairs.html",
        project=project_name(session, project),
        batch=batch,
        pairs=pairs,
        kind=kind,
        prompt=prompt,
        after=after,
        next_after=pairs[-1].id if has_more and pairs else None,
    )


@router.get("/training-jobs", response_class=HTMLResponse)
def training_jobs_page(
    request: Request,
    session: SessionDep,
    project: DashboardProject,
    after: str | None = None,
) -> HTMLResponse:
    """The project's training jobs, newest first."""
    try:
        rows, has_more = job_service.list_training_jobs(
            session, project_id=project, limit=PAGE_SIZE, after=after
        )
    except NotFoundError as error:
        return missing(request, error, project_name(session, project))
    jobs = job_service.training_jobs_out(session, rows)
    return render(
        request,
        "training_jobs.html",
        project=project_name(session, project),
        jobs=jobs,
        next_after=jobs[-1].id if has_more and jobs else None,
    )


@router.get("/training-jobs/{job_id}", response_class=HTMLResponse)
def training_job_page(
    request: Request, job_id: str, session: SessionDep, project: DashboardProject
) -> HTMLResponse:
    """Status, hyperparameters, loss and DPO reward charts, checkpoints and status history."""
    try:
        row = job_service.get_training_job(session, job_id, project_id=project)
    except NotFoundError as error:
        return missing(request, error, project_name(session, project))
    events = job_events(session, job_id, project_id=project, kinds=("metrics", "eval", "status"))
    job = job_service.training_job_out(session, row)
    return render(
        request,
        "training_job.html",
        project=project_name(session, project),
        job=job,
        hyperparameters=hyperparameter_rows(job.hyperparameters),
        charts=job_charts(events),
        history=[job_service.event_out(event) for event in events if event.kind == "status"],
        checkpoints=[
            job_service.checkpoint_out(checkpoint)
            for checkpoint in job_service.list_checkpoints(session, job_id, project_id=project)
        ],
        running=row.status in ("queued", "running"),
        cancellable=row.status in ("queued", "running") and row.cancel_requested_at is None,
    )


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(
    request: Request, session: SessionDep, project: DashboardProject, after: str | None = None
) -> HTMLResponse:
    """The project's datasets, newest first: name and version, pairs by kind, their batches."""
    try:
        rows, has_more = dataset_service.list_datasets(
            session, project_id=project, name=None, limit=PAGE_SIZE, after=after
        )
    except NotFoundError as error:
        return missing(request, error, project_name(session, project))
    return render(
        request,
        "datasets.html",
        project=project_name(session, project),
        datasets=[dataset_service.dataset_out(row) for row in rows],
        next_after=rows[-1].id if has_more and rows else None,
    )


@router.get("/models", response_class=HTMLResponse)
def models_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    project: DashboardProject,
    after: str | None = None,
) -> HTMLResponse:
    """The models a batch can sample from and a job can start from, trained ones with their job."""
    try:
        models, has_more = model_service.list_models(
            session, settings, project_id=project, limit=MODELS_PER_PAGE, after=after
        )
    except NotFoundError as error:
        return missing(request, error, project_name(session, project))
    return render(
        request,
        "models.html",
        project=project_name(session, project),
        models=models,
        next_after=models[-1].id if has_more and models else None,
    )


@router.get("/evaluations", response_class=HTMLResponse)
def evaluations_page(
    request: Request,
    session: SessionDep,
    project: DashboardProject,
    ids: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006  (FastAPI copies it)
) -> HTMLResponse:
    """Models compared per task: accuracy with its interval, a table and a bar chart, for the
    chosen completed evaluations (none chosen: the newest of each model)."""
    comparison = compare(session, project, ids)
    return render(
        request,
        "evaluations.html",
        project=project_name(session, project),
        comparison=comparison,
        chosen_ids={column.evaluation.id for column in comparison.chosen},
        unfinished=unfinished_evaluations(session, project),
    )


@router.get("/webhooks", response_class=HTMLResponse)
def webhooks_page(
    request: Request, session: SessionDep, project: DashboardProject, after: str | None = None
) -> HTMLResponse:
    """The project's webhook endpoints, newest first: URL and events."""
    try:
        rows, has_more = webhook_service.list_webhooks(
            session, project_id=project, limit=PAGE_SIZE, after=after
        )
    except NotFoundError as error:
        return missing(request, error, project_name(session, project))
    return render(
        request,
        "webhooks.html",
        project=project_name(session, project),
        webhooks=[webhook_service.webhook_out(row) for row in rows],
        next_after=rows[-1].id if has_more and rows else None,
    )


@router.get("/webhooks/{webhook_id}", response_class=HTMLResponse)
def webhook_page(
    request: Request,
    webhook_id: str,
    session: SessionDep,
    project: DashboardProject,
    after: str | None = None,
) -> HTMLResponse:
    """One endpoint's delivery log, newest first: each event with every attempt."""
    try:
        endpoint = webhook_service.get_webhook(session, webhook_id, project_id=project)
        deliveries, has_more = webhook_service.list_deliveries(
            session, webhook_id, project_id=project, limit=PAGE_SIZE, after=after
        )
    except NotFoundError as error:
        return missing(request, error, project_name(session, project))
    return render(
        request,
        "webhook.html",
        project=project_name(session, project),
        webhook=webhook_service.webhook_out(endpoint),
        deliveries=deliveries,
        next_after=deliveries[-1].id if has_more and deliveries else None,
    )
