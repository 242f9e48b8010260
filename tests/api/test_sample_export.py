"""Every answer of a batch as a download, and pairs filtered by kind on the server."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.config import Settings
from app.kernel.models import PrefixRollout, Sample, Verdict
from app.services.sample_export import sample_pages, samples_parquet_schema
from app.services.samples import list_samples
from tests.workers.canned_engines import CORRECTION
from tests.workers.test_pipeline import (  # noqa: F401
    CANNED_OPTIONS,
    PROMPTS,
    canned,
    serve_canned,
    submit,
)

K = CANNED_OPTIONS["policy"]["samples_per_prompt"]  # type: ignore[index]


def finished_batch(client: TestClient, settings: Settings) -> str:
    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    serve_canned(settings)
    assert client.get(f"/v1/batches/{batch_id}").json()["status"] == "completed"
    return batch_id


def test_samples_download_holds_every_answer_with_its_verdicts_in_both_formats(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = finished_batch(client, settings)
    listed = client.get(f"/v1/batches/{batch_id}/samples", params={"limit": 500}).json()["data"]

    jsonl = client.get(f"/v1/batches/{batch_id}/samples", params={"format": "jsonl"})
    assert jsonl.status_code == 200
    assert jsonl.headers["content-type"] == "application/jsonl"
    assert jsonl.headers["content-disposition"] == (
        f'attachment; filename="{batch_id}-samples.jsonl"'
    )
    rows = [json.loads(line) for line in jsonl.text.splitlines()]
    assert len(rows) == len(PROMPTS) * K
    assert rows == listed  # the same answers as the JSON listing, verdicts and all
    verdicts = [row["fap"]["verdict"] for row in rows]
    assert verdicts.count("correct") == verdicts.count("wrong") == len(PROMPTS)
    wrong = [row for row in rows if row["fap"]["verdict"] == "wrong"]
    assert all(row["scp"]["outcome"] == "parsed" and row["scp"]["wrong_step"] for row in wrong)

    parquet = client.get(f"/v1/batches/{batch_id}/samples", params={"format": "parquet"})
    assert parquet.status_code == 200
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == len(PROMPTS) * K
    columns = table.to_pylist()
    assert [row["id"] for row in columns] == [row["id"] for row in rows]
    assert [row["fap"]["verdict"] for row in columns] == verdicts
    assert [row["scp"] and row["scp"]["correction"] for row in columns] == [
        row["scp"] and row["scp"]["correction"] for row in rows
    ]
    assert [row["text"] for row in columns] == [row["text"] for row in rows]


def test_samples_download_filters_by_verdict_and_the_listing_stays_json(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = finished_batch(client, settings)
    wrong = client.get(
        f"/v1/batches/{batch_id}/samples", params={"format": "jsonl", "verdict": "wrong"}
    )
    assert {json.loads(line)["fap"]["verdict"] for line in wrong.text.splitlines()} == {"wrong"}
    assert len(wrong.text.splitlines()) == len(PROMPTS)
    page = client.get(f"/v1/batches/{batch_id}/samples", params={"limit": 3})
    assert page.headers["content-type"] == "application/json"
    assert len(page.json()["data"]) == 3 and page.json()["has_more"] is True
    bad = client.get(f"/v1/batches/{batch_id}/samples", params={"format": "csv"})
    assert bad.status_code == 422
    assert "format" in bad.json()["detail"]


def test_sample_pages_are_read_by_key_each_in_a_session_of_its_own(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = finished_batch(client, settings)
    opened: list[Session] = []

    def counting_factory() -> Session:
        session = session_factory()
        opened.append(session)
        return session

    pages = list(sample_pages(counting_factory, batch_id, page_rows=5))  # type: ignore[arg-type]
    assert [page.count(b"\n") for page in pages] == [5, 5, 2]
    assert len(opened) == 3 + 2  # each page; where the next pages end, then that none follow
    ids = [json.loads(line)["id"] for page in pages for line in bytes(page).splitlines()]
    assert ids == sorted(set(ids)) and len(ids) == len(PROMPTS) * K

    # A filter holds over page ends: where the next pages end counts only what it keeps.
    wrong = list(sample_pages(session_factory, batch_id, verdict="wrong", page_rows=4))
    assert [page.count(b"\n") for page in wrong] == [4, 2]
    listed = client.get(
        f"/v1/batches/{batch_id}/samples", params={"verdict": "wrong", "limit": 500}
    ).json()["data"]
    assert [json.loads(line) for page in wrong for line in bytes(page).splitlines()] == listed


def every_kind_of_answer(client: TestClient, settings: Settings, session_factory) -> str:  # type: ignore[no-untyped-def]
    """A finished batch whose answers hold every kind of verdict: correct, wrong with a first
    error, unparseable, truncated, none yet; rollouts agreeing and not (by number and, as scp-v1
    quotes steps, by text), prefix estimates whose rates round half to even; gold labels of each
    shape, a rule verdict, reviewed answers (twice: the newest counts); text that needs escaping."""
    batch_id = finished_batch(client, settings)
    listed = client.get(f"/v1/batches/{batch_id}/samples", params={"limit": 500}).json()["data"]
    right = [row["id"] for row in listed if row["fap"]["verdict"] == "correct"]
    wrong = [row["id"] for row in listed if row["fap"]["verdict"] == "wrong"]
    reviewed = wrong[5]
    for body in (
        {"final_answer_correct": True},
        {"final_answer_correct": False, "first_wrong_step": 1, "correction": CORRECTION},
    ):
        response = client.post(f"/v1/batches/{batch_id}/samples/{reviewed}/review", json=body)
        assert response.status_code == 200, response.text
    accepted = client.post(
        f"/v1/batches/{batch_id}/samples/{right[5]}/review", json={"final_answer_correct": True}
    )
    assert accepted.status_code == 200, accepted.text

    with session_factory() as session:

        def verdict(sample_id: int, kind: str) -> Verdict:
            return session.scalars(
                select(Verdict).where(Verdict.sample_id == sample_id, Verdict.kind == kind)
            ).one()

        unparseable = verdict(right[0], "fap")
        unparseable.outcome, unparseable.verdict = "unparseable", None
        unparseable.reason = 'no JSON object in "the reply"'
        truncated = verdict(right[1], "fap")
        truncated.outcome, truncated.verdict = "truncated", None
        session.get_one(Sample, right[1]).finish_reason = "length"
        session.execute(delete(Verdict).where(Verdict.sample_id == right[2]))  # not judged yet
        odd = session.get_one(Sample, right[3])
        odd.text = 'naïve 😀 \u0001\x1f\t"quoted" \\ </script>\nAnswer: B\u2028'
        odd.gold = {"correct": True}
        verdict(right[3], "fap").raw_output = "\x7f\u00e9\b\f\r"
        session.get_one(Sample, right[4]).gold = {"correct": False}
        by_rule = verdict(right[4], "fap")
        by_rule.prompt_version = "rule-v1"

        steps = [verdict(sample_id, "scp") for sample_id in wrong[:5]]
        for scp, (outcome, number, text_, gold) in zip(
            steps,
            [
                ("parsed", 1, "Step 1: 2 + 2 makes 5.", {"correct": False, "first_wrong_step": 1}),
                ("parsed", 2, "Step 2: Option A is 5.", {"correct": False, "first_wrong_step": 2}),
                ("parsed", None, "  Step 1:  2 + 2\nmakes 5. ", None),
                ("parsed", None, "Step 2: Option A", {"correct": False, "first_wrong_step": None}),
                ("no_step_error", None, None, {"correct": False, "first_wrong_step": None}),
            ],
            strict=True,
        ):
            session.add(
                Verdict(
                    batch_id=batch_id,
                    sample_id=scp.sample_id,
                    kind="rollout",
                    outcome=outcome,
                    wrong_step_number=number,
                    wrong_step=text_,
                    raw_output="",
                    judge_model="canned-policy",
                    prompt_version="rollouts-v1",
                )
            )
            session.get_one(Sample, scp.sample_id).gold = gold
        steps[2].wrong_step_number = None  # scp-v1 quotes the step: compared by text
        steps[3].wrong_step_number = None
        for prefix_steps, (rollouts, successes, unknown) in enumerate(
            [(32, 1, 0), (32, 3, 1), (4, 4, 0), (0, 0, 0), (3, 1, 2), (8, 3, 0), (64, 7, 0)]
        ):
            session.add(
                PrefixRollout(
                    batch_id=batch_id,
                    sample_id=wrong[0],
                    prefix_steps=prefix_steps,
                    rollouts=rollouts,
                    successes=successes,
                    unknown=unknown,
                    successful=[],
                )
            )
        session.commit()
    return batch_id


def test_samples_jsonl_is_the_json_listing_item_by_item_for_every_kind_of_answer(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = every_kind_of_answer(client, settings, session_factory)
    url = f"/v1/batches/{batch_id}/samples"
    with session_factory() as session:
        expected, has_more = list_samples(session, batch_id, limit=500, after=None, verdict=None)
    assert not has_more

    jsonl = client.get(url, params={"format": "jsonl"})
    assert jsonl.status_code == 200
    lines = jsonl.content.decode().split("\n")
    assert lines.pop() == ""
    # Byte for byte the API's JSON of each item: every key, in order, spelled alike.
    assert lines == [sample.model_dump_json() for sample in expected]
    listed = client.get(url, params={"limit": 500}).json()["data"]
    assert [json.loads(line) for line in lines] == listed
    kinds = {
        (row["fap"] or {}).get("outcome", "none") + "/" + str((row["fap"] or {}).get("verdict"))
        for row in listed
    }
    assert kinds == {
        "parsed/correct",
        "parsed/wrong",
        "unparseable/None",
        "truncated/None",
        "none/None",
    }
    assert {row["judge_rollout_agreement"] for row in listed} == {"agree", "disagree", None}
    assert [row["review"] is not None for row in listed].count(True) == 2
    agrees = {json.dumps(row["agrees"]) for row in listed}
    assert agrees == {
        "null",
        '{"fap": true, "scp": true}',
        '{"fap": true, "scp": false}',
        '{"fap": false, "scp": null}',
    }
    rates = [e["success_rate"] for row in listed for e in row["prefix_estimates"] or []]
    assert rates == [0.0312, 0.0938, 1.0, 0.0, 0.3333, 0.375, 0.1094]

    for params, wanted in [
        *[
            ({"verdict": v}, {"verdict": v})
            for v in ("correct", "wrong", "unparseable", "truncated")
        ],
        *[({"agreement": a}, {"agreement": a}) for a in ("agree", "disagree")],
        ({"verdict": "wrong", "agreement": "agree"}, {"verdict": "wrong", "agreement": "agree"}),
    ]:
        filtered = client.get(url, params={"format": "jsonl", **params}).text
        page = client.get(url, params={"limit": 500, **wanted}).json()["data"]
        # Split at newlines only (str.splitlines would also split at a U+2028 in a text).
        assert [json.loads(line) for line in filtered.split("\n")[:-1]] == page, params
        assert page or params == {"verdict": "wrong", "agreement": "agree"}


def test_samples_parquet_holds_the_listing_with_gold_and_agreement_as_json_strings(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = every_kind_of_answer(client, settings, session_factory)
    with session_factory() as session:
        expected, _ = list_samples(session, batch_id, limit=500, after=None, verdict=None)
    parquet = client.get(f"/v1/batches/{batch_id}/samples", params={"format": "parquet"})
    assert parquet.status_code == 200
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.schema == samples_parquet_schema()
    rows = []
    for sample in expected:
        row = sample.model_dump(exclude={"object"})
        for name in ("gold", "agrees"):
            if row[name] is not None:
                row[name] = json.dumps(row[name], ensure_ascii=False)
        rows.append({name: row[name] for name in table.schema.names})
    assert table.to_pylist() == rows


def test_pairs_download_filters_by_kind_in_every_format(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    batch_id = finished_batch(client, settings)
    url = f"/v1/batches/{batch_id}/pairs"
    for kind in ("fap", "scp"):
        lines = client.get(url, params={"format": "jsonl", "kind": kind}).text.splitlines()
        assert len(lines) == len(PROMPTS)
        assert {json.loads(line)["kind"] for line in lines} == {kind}
        parquet = client.get(url, params={"format": "parquet", "kind": kind})
        table = pq.read_table(io.BytesIO(parquet.content))
        assert table.column("kind").to_pylist() == [kind] * len(PROMPTS)
    assert len(client.get(url).text.splitlines()) == 2 * len(PROMPTS)

    unknown = client.get(url, params={"kind": "prm"})
    assert unknown.status_code == 422
    assert "kind" in unknown.json()["detail"]
    with_prm = client.get(url, params={"format": "prm", "kind": "scp"})
    assert with_prm.status_code == 422
    assert with_prm.json()["detail"] == (
        "kind: applies to pairs, not to format=prm (step labels of answers), got 'scp'"
    )
