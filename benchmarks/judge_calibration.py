"""A judge's calibration on the shipped gold set (app/examples/gold_finance.jsonl), measured with
the worker's own judge calls (FAP for every answer, then SCP for those it calls wrong) and the
API's calibration figures, without the service around them.

    python -m benchmarks.judge_calibration                       # SmolLM2 on hf, scp-steps-v1
    python -m benchmarks.judge_calibration --model my-judge --engine vllm
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from app.kernel.config import get_settings
from app.services.calibration import JudgedGold, calibrate
from workers.engines.registry import load_engine
from workers.judging import AnswerToJudge, JudgeSettings, analyse_first_errors, judge_final_answers

GOLD_SET = Path(__file__).resolve().parents[1] / "app" / "examples" / "gold_finance.jsonl"


def main(
    model: Annotated[str, typer.Option(help="Registered judge model.")] = "smollm2-135m-instruct",
    engine: Annotated[str, typer.Option(help="hf, vllm or openai.")] = "hf",
    max_tokens: Annotated[int, typer.Option(help="Tokens per judge reply.")] = 256,
    scp_prompt_version: Annotated[str, typer.Option(help="scp-steps-v1 or scp-v1.")] = (
        "scp-steps-v1"
    ),
) -> None:
    """Print the judge's calibration figures and how its decisions are spread."""
    settings = get_settings()
    prompts = [json.loads(line) for line in GOLD_SET.read_text().splitlines()]
    answers: list[AnswerToJudge] = []
    golds: dict[int, dict] = {}
    for prompt in prompts:
        for answer in prompt["answers"]:
            sample_id = len(answers)
            answers.append(
                AnswerToJudge(
                    sample_id, prompt["question"], prompt["reference_answer"], answer["text"]
                )
            )
            golds[sample_id] = answer["gold"]
    loaded = load_engine(
        engine=engine,
        model=model,
        models_dir=settings.models_dir,
        device=settings.device,
        options=settings.engine_options.get(engine, {}),
    )
    judge = JudgeSettings(max_tokens=max_tokens, temperature=0.0, retries=settings.judge_retries)
    since = time.time()
    fap = {item.sample_id: item.result for item in judge_final_answers(loaded, answers, judge)}
    wrong = [a for a in answers if fap[a.sample_id].verdict == "wrong"]
    scp = {
        item.sample_id: item.result
        for item in analyse_first_errors(loaded, wrong, judge, prompt_version=scp_prompt_version)
    }
    items = [
        JudgedGold(
            gold=golds[a.sample_id],
            fap_verdict=fap[a.sample_id].verdict,
            by_rule=False,
            scp_outcome=getattr(scp.get(a.sample_id), "outcome", None),
            scp_step=getattr(scp.get(a.sample_id), "wrong_step_number", None),
        )
        for a in answers
    ]
    calibration = calibrate(items)
    assert calibration is not None
    print(
        f"{model} ({engine}, fap-v1, {scp_prompt_version}) on {len(answers)} gold answers, "
        f"{time.time() - since:.0f} s"
    )
    print("verdicts:", dict(Counter(str(r.verdict) for r in fap.values())))
    print(
        "first wrong steps named:",
        dict(Counter(f"{r.outcome}:{r.wrong_step_number}" for r in scp.values())),
    )
    print(calibration.model_dump_json(indent=2))


if __name__ == "__main__":
    typer.run(main)
