"""The RQ jobs of a chunk: sample it (policy worker), then judge, analyse and pair it (judge
worker); each stage resumes from what is already stored."""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from redis.exceptions import RedisError
from rq import Retry
from sqlalchemy.orm import Session

from app.kernel.chunk_stats import ChunkStats, TokenUsage
from app.kernel.context import ProcessContext, process_context
from app.kernel.models import Prompt, Sample, Verdict
from app.kernel.models.statuses import (
    ROLLOUT_VERDICT,
    ChunkStage,
    FinishReason,
    RunStatus,
    SignalKind,
    VerdictOutcome,
)
from app.kernel.pairing import (
    JudgedSample,
    PairCandidate,
    build_fap_pairs,
    build_scp_pairs,
    filter_pairs,
    model_provenance,
    pair_columns,
)
from app.kernel.queue import ChunkRoute, ModelRef, enqueue_chunks, mark_enqueued
from app.kernel.reviews import lock_reviewed
from workers import chunk_store
from workers.chunk_store import ChunkWork
from workers.consensus import step_correction
from workers.engines.base import Message, RequestRejectedError, SamplingParams
from workers.given_answers import is_given, store_given_answers
from workers.judging import (
    AnswerToJudge,
    Judged,
    JudgeSettings,
    analyse_first_errors,
    judge_final_answers,
    judge_final_answers_by_rule,
)
from workers.lease import LeaseKeeper, LeaseLostError
from workers.loaded_models import engine_for, token_counter_for
from workers.metrics import StageMeter
from workers.progress import FAP, SAMPLE, SCP, ChunkProgress, chunk_progress
from workers.prompts.fap import FapResult
from workers.prompts.policy import build_answer_messages, build_policy_messages
from workers.prompts.scp import ScpResult
from workers.rollout_labels import label_missing_by_rollouts, rollout_provenance
from workers.rule_judge import RULE_PROMPT_VERSION

log = logging.getLogger(__name__)


def sample_chunk(chunk_id: int) -> str | Retry:
    """Job on a policy queue: sample the chunk, then judge it here (rule) or queue its judge."""
    return run_stage(process_context(), chunk_id, ChunkStage.SAMPLE)


def judge_chunk(chunk_id: int) -> str | Retry:
    """Job on a judge queue: verdicts, first-error analyses and pairs for a sampled chunk."""
    return run_stage(process_context(), chunk_id, ChunkStage.JUDGE)


def run_stage(context: ProcessContext, chunk_id: int, stage: ChunkStage) -> str | Retry:
    """Run one stage of a chunk under a lease; idempotent, so a chunk run twice stores
    everything once. A stage that raises is retried (RQ re-enqueues the job) while the chunk
    has attempts left; then the chunk is marked failed and the job fails."""
    settings = context.settings
    work = context.transaction(
        lambda session: chunk_store.claim_chunk(
            session,
            chunk_id,
            stage=stage,
            worker_name=context.name,
            lease_s=settings.chunk_lease_s,
            max_attempts=settings.chunk_max_attempts,
        )
    )
    if work is None:
        return "skipped"
    meter = StageMeter()
    progress = chunk_progress(context.redis, settings.queue_name, work)
    model = ModelRef.of(work.options.policy if stage == ChunkStage.SAMPLE else work.options.judge)
    with LeaseKeeper(context.session_factory, work.lease, lease_s=settings.chunk_lease_s) as lease:
        try:
            outcome = run_claimed_stage(context, work, stage, meter, progress, lease=lease)
        except LeaseLostError:
            meter.record(context.metrics, stage, model, "lost")
            return report_lost_lease(work)
        except Exception as error:
            log.exception("chunk %s failed at %s (attempt %d)", chunk_id, stage, work.lease.attempt)
            meter.record(context.metrics, stage, model, "error")
            return give_back(context, work, stage, error)
        finally:
            progress.clear()
    meter.record(context.metrics, stage, model, outcome)
    return outcome


def run_claimed_stage(
    context: ProcessContext,
    work: ChunkWork,
    stage: ChunkStage,
    meter: StageMeter,
    progress: ChunkProgress | None = None,
    *,
    lease: LeaseKeeper | None = None,
) -> str:
    if stage == ChunkStage.SAMPLE:
        usage = sample_missing_answers(context, work, meter=meter, progress=progress, lease=lease)
        sampled = ChunkStats(usage=usage)
        if not work.options.judged_by_rule:
            return queue_for_judge(context, work, sampled)
        judged = judge_and_pair(context, work, meter=meter, progress=progress, lease=lease)
        stats = sampled.then(judged)
    else:
        stats = judge_and_pair(context, work, meter=meter, progress=progress, lease=lease)
    finished = context.transaction(
        lambda session: chunk_store.finish_chunk(
            session, work.chunk_id, stats=stats, error=None, lease=work.lease
        )
    )
    return "succeeded" if finished else report_lost_lease(work)


def give_back(
    context: ProcessContext, work: ChunkWork, stage: ChunkStage, error: Exception
) -> str | Retry:
    """Put the chunk back in the queue for another attempt, or fail it (and this job); a
    request the model server refused fails it at once, with the server's message."""
    max_attempts = context.settings.chunk_max_attempts
    message = f"{stage}: {type(error).__name__}: {error}"
    if isinstance(error, RequestRejectedError):
        # The same request is refused the same way on every attempt: say so now, not 3 runs later.
        refused = f"{message[:1900]} (not retried: the model server refused the request)"
        failed = context.transaction(
            lambda session: chunk_store.finish_chunk(
                session, work.chunk_id, stats=None, error=refused, lease=work.lease
            )
        )
        status: RunStatus | None = RunStatus.FAILED if failed else None
    else:
        status = context.transaction(
            lambda session: chunk_store.release_after_error(
                session, work.lease, error=message[:2000], max_attempts=max_attempts
            )
        )
    if status == RunStatus.QUEUED:
        log.warning(
            "chunk %s: attempt %d of %d failed; queued again",
            work.chunk_id,
            work.lease.attempt,
            max_attempts,
        )
        # RQ puts the same job back at the end of its queue; Postgres counts the attempts.
        return Retry(max=max_attempts)
    if status is None:
        return report_lost_lease(work)
    raise RuntimeError(
        f"chunk {work.chunk_id} failed at {stage} on attempt {work.lease.attempt}:\n"
        f"{traceback.format_exc()}"
    ) from error


def ensure_lease(lease: LeaseKeeper | None) -> None:
    """Before a model call: stop (LeaseLostError) if this run can no longer count on its lease."""
    if lease is not None:
        lease.check()


def report_lost_lease(work: ChunkWork) -> str:
    log.warning(
        "chunk %s: lease lost during attempt %d; another run completes it",
        work.chunk_id,
        work.lease.attempt,
    )
    return "lost"


def queue_for_judge(context: ProcessContext, work: ChunkWork, stats: ChunkStats) -> str:
    """Hand the sampled chunk to whichever worker serves its judge (maybe this one)."""
    handed = context.transaction(
        lambda session: chunk_store.hand_to_judge(session, work.lease, stats=stats)
    )
    if not handed:
        return report_lost_lease(work)
    route = ChunkRoute(work.chunk_id, ChunkStage.JUDGE, ModelRef.of(work.options.judge))
    try:
        enqueue_chunks(
            context.redis,
            context.settings.queue_name,
            [route],
            timeout_s=context.settings.chunk_timeout_s,
            ttl_s=context.settings.queued_job_ttl_s,
        )
    except RedisError:
        # Committed first, unconfirmed: the reaper finds the chunk in Postgres and sends it.
        log.exception("chunk %s: judge job not enqueued; the reaper will send it", work.chunk_id)
        return "sampled"
    context.transaction(lambda session: mark_enqueued(session, [route]))
    return "sampled"


def judge_and_pair(
    context: ProcessContext,
    work: ChunkWork,
    *,
    meter: StageMeter | None = None,
    progress: ChunkProgress | None = None,
    lease: LeaseKeeper | None = None,
) -> ChunkStats:
    """Judge every stored answer that still lacks a verdict, then build and store the pairs."""
    meter = meter or StageMeter()
    progress = progress or ChunkProgress.unreported()
    store_given_answers(context, work)
    samples = load_chunk_samples(context, work)
    usage = judge_missing_final_answers(context, work, samples, meter, progress, lease=lease)
    if work.options.pairing.scp and work.options.uses_judge_analysis:
        usage += analyse_missing_first_errors(context, work, samples, meter, progress, lease=lease)
    if work.options.pairing.scp and work.options.uses_rollouts:
        verdicts = load_verdicts(context, samples)
        usage += label_missing_by_rollouts(
            context, work, samples, verdicts, lease=lease, progress=progress
        )
    pairs_dropped = store_pairs(context, work, samples)
    return ChunkStats(usage=usage, pairs_dropped=pairs_dropped)


def sample_missing_answers(
    context: ProcessContext,
    work: ChunkWork,
    *,
    meter: StageMeter | None = None,
    progress: ChunkProgress | None = None,
    lease: LeaseKeeper | None = None,
) -> TokenUsage:
    """One batched engine call: K answers for every prompt that has none stored yet."""
    meter = meter or StageMeter()
    progress = progress or ChunkProgress.unreported()
    policy = work.options.policy
    k = policy.samples_per_prompt
    stored = load_chunk_samples(context, work)
    count_by_prompt: dict[int, int] = {}
    for sample in stored:
        count_by_prompt[sample.prompt_id] = count_by_prompt.get(sample.prompt_id, 0) + 1
    todo = [p for p in work.prompts if not is_given(p) and count_by_prompt.get(p.id, 0) < k]
    usage = TokenUsage()
    if not todo:
        return usage
    engine = engine_for(context, ModelRef.of(policy), project_id=work.project_id)
    params = SamplingParams(
        n=k,
        temperature=policy.temperature,
        top_p=policy.top_p,
        max_tokens=policy.max_tokens,
        seed=None if policy.seed is None else policy.seed + work.chunk_index,
    )
    ensure_lease(lease)
    since = time.time()
    with progress.call(SAMPLE):
        conversations = [build_answer_messages(p.question, policy.prompt_version) for p in todo]
        generations = engine.generate(conversations, params)
    completions = [c for generation in generations for c in generation.completions]
    progress.call_done(
        tokens=sum(c.completion_tokens for c in completions), answers=len(completions)
    )
    meter.sampled(ModelRef.of(policy), generations, since=since)
    rows = []
    for prompt, generation in zip(todo, generations, strict=True):
        usage.policy_prompt_tokens += generation.prompt_tokens
        for index, completion in enumerate(generation.completions):
            usage.policy_completion_tokens += completion.completion_tokens
            rows.append(
                {
                    "batch_id": work.batch_id,
                    "prompt_id": prompt.id,
                    "sample_index": index,
                    "text": postgres_text(completion.text),
                    "prompt_tokens": generation.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                    "policy_model": policy.model,
                    "policy_prompt_version": policy.prompt_version,
                    "finish_reason": completion.finish_reason,
                }
            )
    context.transaction(lambda session: chunk_store.insert_samples(session, rows))
    progress.stored()
    return usage


def postgres_text(text: str) -> str:
    """Model output as Postgres text can hold it (a stray NUL byte becomes U+FFFD)."""
    return text.replace("\x00", "\ufffd")


def load_chunk_samples(context: ProcessContext, work: ChunkWork) -> list[Sample]:
    prompt_ids = [p.id for p in work.prompts]
    return context.transaction(lambda session: chunk_store.load_samples(session, prompt_ids))


def load_verdicts(context: ProcessContext, samples: list[Sample]) -> dict[tuple[int, str], Verdict]:
    sample_ids = [s.id for s in samples]
    return context.transaction(lambda session: chunk_store.load_verdicts(session, sample_ids))


def answers_to_judge(work: ChunkWork, samples: list[Sample]) -> list[AnswerToJudge]:
    prompts: dict[int, Prompt] = {p.id: p for p in work.prompts}
    return [
        AnswerToJudge(
            sample_id=sample.id,
            question=prompts[sample.prompt_id].question,
            reference_answer=prompts[sample.prompt_id].reference_answer or "",
            answer=sample.text,
        )
        for sample in samples
    ]


def judge_settings(context: ProcessContext, work: ChunkWork) -> JudgeSettings:
    judge = work.options.judge
    seed = work.options.policy.seed
    return JudgeSettings(
        max_tokens=judge.max_tokens,
        temperature=judge.temperature,
        retries=context.settings.judge_retries,
        seed=None if seed is None else seed + work.chunk_index,
    )


def judge_missing_final_answers(
    context: ProcessContext,
    work: ChunkWork,
    samples: list[Sample],
    meter: StageMeter,
    progress: ChunkProgress | None = None,
    *,
    lease: LeaseKeeper | None = None,
) -> TokenUsage:
    """FAP verdicts for every sample without one: the rule verifier or one batched judge call."""
    progress = progress or ChunkProgress.unreported()
    verdicts = load_verdicts(context, samples)
    todo = [s for s in samples if (s.id, SignalKind.FAP) not in verdicts]
    truncated = [s for s in todo if s.finish_reason == FinishReason.LENGTH]
    if truncated:
        rows = [truncated_row(work, sample) for sample in truncated]
        context.transaction(lambda session: chunk_store.insert_verdicts(session, rows))
        todo = [s for s in todo if s.finish_reason != FinishReason.LENGTH]
    if not todo:
        return TokenUsage()
    judge = work.options.judge
    answers = answers_to_judge(work, todo)
    if work.options.judged_by_rule:
        since = time.time()
        judged = judge_final_answers_by_rule(answers)
        version = RULE_PROMPT_VERSION
    else:
        engine = engine_for(context, ModelRef.of(judge), project_id=work.project_id)
        ensure_lease(lease)
        since = time.time()
        with progress.call(FAP):
            judged = judge_final_answers(engine, answers, judge_settings(context, work))
        judged_call_done(progress, judged)
        version = judge.fap_prompt_version
    usage = store_verdicts(context, work, judged, SignalKind.FAP, version, meter, since=since)
    progress.stored()
    return usage


def judged_call_done(progress: ChunkProgress, judged: list[Judged[Any]]) -> None:
    """A judge call (with its retries) returned: its answers are judged, its tokens known."""
    tokens = sum(item.completion_tokens for item in judged)
    progress.call_done(tokens=tokens, answers=len(judged))


def truncated_row(work: ChunkWork, sample: Sample) -> dict[str, Any]:
    """The FAP row of an answer cut at max_tokens: no verdict, so it is never paired or analysed;
    its final line is missing, and judging it would call a correct but unfinished answer wrong."""
    judge = work.options.judge
    return {
        "batch_id": work.batch_id,
        "sample_id": sample.id,
        "kind": SignalKind.FAP,
        "outcome": VerdictOutcome.TRUNCATED,
        "reason": f"cut at max_tokens after {sample.completion_tokens} tokens: not judged",
        "raw_output": "",
        "attempts": 0,
        "judge_model": judge.model,
        "prompt_version": RULE_PROMPT_VERSION
        if work.options.judged_by_rule
        else judge.fap_prompt_version,
    }


def analyse_missing_first_errors(
    context: ProcessContext,
    work: ChunkWork,
    samples: list[Sample],
    meter: StageMeter,
    progress: ChunkProgress | None = None,
    *,
    lease: LeaseKeeper | None = None,
) -> TokenUsage:
    """SCP analyses, in one batched call, of every wrong answer without one."""
    verdicts = load_verdicts(context, samples)
    todo = [
        s
        for s in samples
        if (fap := verdicts.get((s.id, SignalKind.FAP))) is not None
        and fap.verdict == "wrong"
        and (s.id, SignalKind.SCP) not in verdicts
    ]
    if not todo:
        return TokenUsage()
    judge = work.options.judge
    engine = engine_for(context, ModelRef.of(judge), project_id=work.project_id)
    ensure_lease(lease)
    since = time.time()
    progress = progress or ChunkProgress.unreported()
    with progress.call(SCP):
        judged = analyse_first_errors(
            engine,
            answers_to_judge(work, todo),
            judge_settings(context, work),
            prompt_version=judge.scp_prompt_version,
        )
    judged_call_done(progress, judged)
    version = judge.scp_prompt_version
    usage = store_verdicts(context, work, judged, SignalKind.SCP, version, meter, since=since)
    progress.stored()
    return usage


def store_verdicts(
    context: ProcessContext,
    work: ChunkWork,
    judged: list[Judged[Any]],
    kind: SignalKind,
    prompt_version: str,
    meter: StageMeter,
    *,
    since: float,
) -> TokenUsage:
    """Count the judge's replies for /metrics, store its verdicts, and return its token usage."""
    meter.judged(ModelRef.of(work.options.judge), kind, judged, since=since)
    rows = [verdict_row(work, item, kind, prompt_version) for item in judged]
    context.transaction(lambda session: chunk_store.insert_verdicts(session, rows))
    return TokenUsage(
        judge_prompt_tokens=sum(item.prompt_tokens for item in judged),
        judge_completion_tokens=sum(item.completion_tokens for item in judged),
    )


def verdict_row(
    work: ChunkWork, item: Judged[Any], kind: SignalKind, prompt_version: str
) -> dict[str, Any]:
    result: FapResult | ScpResult = item.result
    row: dict[str, Any] = {
        "batch_id": work.batch_id,
        "sample_id": item.sample_id,
        "kind": kind,
        "outcome": result.outcome,
        "reason": result.reason,
        "justification": result.justification,
        "raw_output": postgres_text(item.raw_output),
        "attempts": item.attempts,
        "judge_model": work.options.judge.model,
        "prompt_version": prompt_version,
        "prompt_tokens": item.prompt_tokens,
        "completion_tokens": item.completion_tokens,
    }
    if isinstance(result, FapResult):
        row |= {"verdict": result.verdict, "extracted_answer": result.extracted_answer}
    else:
        row |= {
            "correct_prefix": result.correct_prefix,
            "wrong_step": result.wrong_step,
            "wrong_step_number": result.wrong_step_number,
            "correction": result.correction,
        }
    return row


def store_pairs(context: ProcessContext, work: ChunkWork, samples: list[Sample]) -> dict[str, int]:
    """Build FAP and SCP pairs from everything stored for the chunk, filter, insert once."""
    verdicts = load_verdicts(context, samples)
    by_prompt: dict[int, list[Sample]] = {}
    for sample in samples:
        by_prompt.setdefault(sample.prompt_id, []).append(sample)
    candidates: list[tuple[int, PairCandidate]] = []
    for prompt in work.prompts:
        candidates += [
            (prompt.id, pair)
            for pair in prompt_pairs(work, prompt, by_prompt.get(prompt.id, []), verdicts)
        ]
    if not candidates:
        return {}
    count_tokens = token_counter_for(
        context, ModelRef.of(work.options.policy), project_id=work.project_id
    )
    kept, dropped = filter_pairs(
        [pair for _, pair in candidates],
        count_tokens=count_tokens,
        max_pair_tokens=work.options.pairing.max_pair_tokens,
    )
    prompt_of: dict[str, int] = {}
    for prompt_id, pair in candidates:
        prompt_of.setdefault(pair.content_hash, prompt_id)  # duplicates keep the first prompt
    given = {p.id for p in work.prompts if is_given(p)}
    rolled = rollout_provenance(context, work, [p.rejected_sample_id for p in kept])
    rows = [
        pair_row(
            work,
            prompt_of[pair.content_hash],
            pair,
            given=prompt_of[pair.content_hash] in given,
            rollouts=rolled.get(pair.rejected_sample_id) if pair.kind == SignalKind.SCP else None,
        )
        for pair in kept
    ]
    context.transaction(lambda session: insert_unreviewed_pairs(session, rows, samples))
    return dropped


def insert_unreviewed_pairs(
    session: Session, rows: list[dict[str, Any]], samples: list[Sample]
) -> None:
    """Insert the judge's pairs, less those of answers a person reviewed: the review rebuilt
    (and withdrew) those, and a chunk run again must not bring the judge's back."""
    reviewed = lock_reviewed(session, [sample.id for sample in samples])
    chunk_store.insert_pairs(
        session,
        [
            row
            for row in rows
            if row["rejected_sample_id"] not in reviewed and row["chosen_sample_id"] not in reviewed
        ],
    )


def prompt_pairs(
    work: ChunkWork, prompt: Prompt, samples: list[Sample], verdicts: dict[tuple[int, str], Any]
) -> list[PairCandidate]:
    pairing = work.options.pairing
    pairs: list[PairCandidate] = []
    context = pair_context(work, prompt)
    if pairing.fap:
        judged = [
            JudgedSample(
                sample_id=s.id,
                text=s.text,
                verdict=getattr(verdicts.get((s.id, SignalKind.FAP)), "verdict", None),
            )
            for s in samples
        ]
        pairs += build_fap_pairs(
            prompt.question,
            judged,
            strategy=pairing.strategy,
            max_pairs_per_prompt=pairing.max_pairs_per_prompt,
            context=context,
        )
    if pairing.scp:
        method = work.options.judge.scp_method
        corrections = [
            correction
            for s in samples
            if (
                correction := step_correction(
                    method,
                    s.id,
                    verdicts.get((s.id, SignalKind.SCP)),
                    verdicts.get((s.id, ROLLOUT_VERDICT)),
                )
            )
            is not None
        ]
        pairs += build_scp_pairs(prompt.question, corrections, context=context)
    return pairs


def pair_context(work: ChunkWork, prompt: Prompt) -> list[Message]:
    """What precedes the question in a pair's prompt: nothing (pairing.prompt "question", the
    paper's), or the system prompt and worked examples the policy saw ("as_sampled"). Given
    answers were not written in that context, so theirs is always the bare question."""
    if work.options.pairing.prompt != "as_sampled" or is_given(prompt):
        return []
    return build_policy_messages(prompt.question)[:-1]


def pair_row(
    work: ChunkWork,
    prompt_id: int,
    pair: PairCandidate,
    *,
    given: bool = False,
    rollouts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pair's row; its provenance names the policy and sampling only for sampled answers,
    and for an SCP pair of a batch with rollouts, the search, M and each prefix's estimate."""
    policy, judge = work.options.policy, work.options.judge
    provenance_extra: dict[str, Any] = {}
    if pair.kind == SignalKind.SCP and work.options.uses_rollouts:
        provenance_extra = {"scp_method": judge.scp_method, "rollouts": rollouts}
    if work.options.judged_by_rule:
        judge_version = RULE_PROMPT_VERSION
    elif pair.kind == SignalKind.FAP or judge.scp_method == "rollouts":
        # Rollout-found steps: the FAP judge checked the continuations, no SCP prompt ran.
        judge_version = judge.fap_prompt_version
    else:
        judge_version = judge.scp_prompt_version
    provenance = {
        **model_provenance(work.options, given=given),
        "judge_prompt_version": judge_version,
        "sampling": None
        if given
        else policy.model_dump(
            mode="json",
            include={"samples_per_prompt", "temperature", "top_p", "max_tokens", "seed"},
        ),
        **provenance_extra,
    }
    return pair_columns(work.batch_id, prompt_id, pair, provenance)
