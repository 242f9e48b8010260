"""pairing.prompt: the bare question (the paper's), or the conversation the policy sampled in."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.kernel.config import Settings
from app.kernel.pairing import scp_prompt_text
from tests.workers.canned_engines import RIGHT, WRONG, CannedJudge, CannedPolicy
from tests.workers.test_pipeline import (  # noqa: F401  (the canned fixture)
    CANNED_OPTIONS,
    QUESTION,
    canned,
    pairs_of,
    serve_canned,
    submit,
)
from workers.prompts.policy import build_policy_messages


def test_as_sampled_pairs_carry_the_policy_context_and_given_answers_do_not(
    client: TestClient,
    settings: Settings,
    canned: tuple[CannedPolicy, CannedJudge],  # noqa: F811
) -> None:
    prompts = [
        {"id": "sampled", "question": QUESTION, "reference_answer": "B"},
        {
            "id": "given",
            "question": QUESTION + " (given)",
            "reference_answer": "B",
            "answers": [RIGHT, WRONG],
        },
    ]
    batch_id = submit(client, prompts, **CANNED_OPTIONS, pairing={"prompt": "as_sampled"})
    serve_canned(settings)

    pairs = {(p["custom_id"], p["kind"]): p for p in pairs_of(client, batch_id)}
    seen = build_policy_messages(QUESTION)
    assert pairs[("sampled", "fap")]["prompt"] == seen
    scp_prompt = pairs[("sampled", "scp")]["prompt"]
    assert scp_prompt[:-1] == seen[:-1]  # system prompt and the two worked examples
    assert scp_prompt[-1] == {"role": "user", "content": scp_prompt_text(QUESTION, "")}
    assert pairs[("given", "fap")]["prompt"] == [{"role": "user", "content": QUESTION + " (given)"}]


def test_question_is_the_default_pair_prompt(
    client: TestClient,
    settings: Settings,
    canned: tuple[CannedPolicy, CannedJudge],  # noqa: F811
) -> None:
    batch_id = submit(client, [{"question": QUESTION, "reference_answer": "B"}], **CANNED_OPTIONS)
    serve_canned(settings)

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["pairing"]["prompt"] == "question"
    fap = next(p for p in pairs_of(client, batch_id) if p["kind"] == "fap")
    assert fap["prompt"] == [{"role": "user", "content": QUESTION}]


def test_unknown_pair_prompt_is_a_422_naming_the_field(client: TestClient) -> None:
    response = client.post(
        "/v1/batches",
        json={
            "prompts": [{"question": QUESTION, "reference_answer": "B"}],
            "pairing": {"prompt": "system"},
        },
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("pairing.prompt: Input should be 'question'")
