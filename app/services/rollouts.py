"""Rollout batches: the requests refused before any work, and the batch's rollout report."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.kernel.batch_options import BatchSettings, EngineName
from app.kernel.consensus import agreement
from app.kernel.errors import InvalidInputError
from app.kernel.models import PrefixRollout, Verdict
from app.kernel.models.statuses import ROLLOUT_VERDICT, SignalKind
from app.kernel.verifiable import rule_verifiable
from app.schemas.batch import BatchCreate
from app.schemas.rollouts import JudgeRolloutAgreement, RolloutReport


def check_scp_method(request: BatchCreate) -> None:
    """Refuse a rollout batch that cannot run: no policy to continue the answers, a consensus
    without a judge analysis, or a rule judge that cannot check the finished answers."""
    method = request.judge.scp_method
    if method == "judge":
        return
    given_only = all(p.answers is not None for p in request.prompts)
    if given_only and "policy" not in request.model_fields_set:
        raise InvalidInputError(
            f"judge.scp_method: {method!r} needs a policy to continue the answers from their "
            "step prefixes; this batch of given answers names none (set policy.model)"
        )
    if request.judge.engine != EngineName.RULE:
        return
    if method == "consensus":
        raise InvalidInputError(
            "judge.scp_method: 'consensus' compares the judge's first-error analysis with the "
            "rollouts, and the rule judge makes none (use 'rollouts', or an LLM judge)"
        )
    for position, prompt in enumerate(request.prompts):
        if not rule_verifiable(prompt.reference_answer or ""):
            raise InvalidInputError(
                f"{prompt.where(position, 'reference_answer')}: judge.scp_method 'rollouts' with "
                "the rule judge needs a choice letter or a number to check continuations "
                "against; this reference states neither (use an LLM judge)"
            )


def rollout_report(session: Session, batch_id: str, options: BatchSettings) -> RolloutReport | None:
    """What the batch's rollouts cost and found so far; None for a judge-only batch."""
    if not options.uses_rollouts:
        return None
    outcomes = dict(
        session.execute(
            select(Verdict.outcome, func.count())
            .where(Verdict.batch_id == batch_id, Verdict.kind == ROLLOUT_VERDICT)
            .group_by(Verdict.outcome)
        ).all()
    )
    prefixes, rollouts, tokens = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(PrefixRollout.rollouts), 0),
            func.coalesce(
                func.sum(PrefixRollout.prompt_tokens + PrefixRollout.completion_tokens), 0
            ),
        ).where(PrefixRollout.batch_id == batch_id)
    ).one()
    labelled = outcomes.get("parsed", 0)
    judge = options.judge
    return RolloutReport(
        scp_method=judge.scp_method,
        search=judge.rollout_search,
        rollouts_per_step=judge.rollouts_per_step,
        answers_searched=sum(outcomes.values()),
        labelled_answers=labelled,
        outcomes=outcomes,
        prefixes_rolled_out=prefixes,
        rollouts=int(rollouts),
        rollouts_per_labelled_answer=round(rollouts / labelled, 2) if labelled else None,
        rollout_tokens=int(tokens),
        agreement=judge_agreement(session, batch_id) if judge.scp_method == "consensus" else None,
    )


def judge_agreement(session: Session, batch_id: str) -> JudgeRolloutAgreement:
    """How often the judge and the rollouts name the same first wrong step."""
    rows = session.scalars(
        select(Verdict).where(
            Verdict.batch_id == batch_id, Verdict.kind.in_([SignalKind.SCP, ROLLOUT_VERDICT])
        )
    )
    by_sample: dict[int, dict[str, Verdict]] = {}
    for row in rows:
        by_sample.setdefault(row.sample_id, {})[row.kind] = row
    found = [agreement(v.get(SignalKind.SCP), v.get(ROLLOUT_VERDICT)) for v in by_sample.values()]
    agree, disagree = found.count("agree"), found.count("disagree")
    compared = agree + disagree
    return JudgeRolloutAgreement(
        compared=compared,
        agree=agree,
        disagree=disagree,
        rate=round(agree / compared, 4) if compared else None,
    )
