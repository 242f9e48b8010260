"""Prompts and eval questions from CSV, Parquet and JSONL files with a column mapping."""

from __future__ import annotations

import io
import json

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.kernel.config import Settings
from app.kernel.errors import InvalidInputError
from app.kernel.files import uploaded_file_path
from app.kernel.models import Prompt, TrainingFile
from app.services.table_rows import CsvReader, Rows
from tests.conftest import api_key, bearer
from tests.live import live_api

MAPPING = {"question": "problem", "reference_answer": "solution", "id": "uid"}
ROWS = [
    {"uid": "p1", "problem": "What is 2 + 2?\nA. 4\nB. 5", "solution": "A", "level": "easy"},
    {"uid": "p2", "problem": 'Say "yes", then stop.', "solution": "B", "level": "hard"},
    {"uid": "p3", "problem": "Bonds, or equity?", "solution": "A", "level": "easy"},
]
OPTIONS = json.dumps({"judge": {"engine": "rule"}})


def csv_bytes(rows: list[dict]) -> bytes:
    header = list(rows[0])
    lines = [",".join(header)]
    for row in rows:
        lines.append(",".join('"' + str(row[c]).replace('"', '""') + '"' for c in header))
    return ("\r\n".join(lines) + "\r\n").encode()


def parquet_bytes(rows: list[dict], row_group_size: int = 2) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out, row_group_size=row_group_size)
    return out.getvalue()


def jsonl_bytes(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


ENCODERS = {"csv": csv_bytes, "parquet": parquet_bytes, "jsonl": jsonl_bytes}


def upload_prompts(
    client: TestClient, name: str, body: bytes, columns: object = MAPPING, **fields: str
):  # type: ignore[no-untyped-def]
    data = {"options": OPTIONS, **fields}
    if columns is not None:
        data["columns"] = columns if isinstance(columns, str) else json.dumps(columns)
    return client.post("/v1/batches", data=data, files={"file": (name, body)})


def stored_prompts(session_factory) -> list[tuple[str | None, str, str | None]]:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        return [
            tuple(row)
            for row in session.execute(
                select(Prompt.custom_id, Prompt.question, Prompt.reference_answer).order_by(
                    Prompt.index
                )
            )
        ]


@pytest.mark.parametrize("table", ["csv", "parquet", "jsonl"])
def test_each_format_with_a_column_mapping_makes_the_batch(
    client: TestClient, session_factory, table: str
) -> None:  # type: ignore[no-untyped-def]
    rows = (
        ROWS if table != "jsonl" else [{k: v for k, v in r.items() if k != "level"} for r in ROWS]
    )
    response = upload_prompts(client, f"prompts.{table}", ENCODERS[table](rows))
    assert response.status_code == 201, response.text
    assert response.json()["request_counts"]["total"] == 3
    assert stored_prompts(session_factory) == [
        (row["uid"], row["problem"], row["solution"]) for row in ROWS
    ]


def test_format_field_wins_over_the_file_name_and_metadata_columns_are_mapped(
    client: TestClient, session_factory
) -> None:  # type: ignore[no-untyped-def]
    columns = {**MAPPING, "metadata.level": "level"}
    response = upload_prompts(
        client, "export.bin", parquet_bytes(ROWS), columns=columns, format="parquet"
    )
    assert response.status_code == 201, response.text
    with session_factory() as session:
        metadata = list(session.scalars(select(Prompt.prompt_metadata).order_by(Prompt.index)))
    assert metadata == [{"level": "easy"}, {"level": "hard"}, {"level": "easy"}]


def test_parquet_values_json_lacks_are_stored_as_text_or_numbers(
    client: TestClient, session_factory
) -> None:  # type: ignore[no-untyped-def]
    import datetime
    import decimal

    rows = [
        {
            **ROWS[0],
            "asked_at": datetime.datetime(2024, 5, 1, 9, 30),
            "price": decimal.Decimal("12.50"),
        }
    ]
    columns = {**MAPPING, "metadata.asked_at": "asked_at", "metadata.price": "price"}
    response = upload_prompts(client, "p.parquet", parquet_bytes(rows), columns=columns)
    assert response.status_code == 201, response.text
    with session_factory() as session:
        metadata = session.scalars(select(Prompt.prompt_metadata)).one()
    assert metadata == {"asked_at": "2024-05-01T09:30:00", "price": 12.5}


def test_csv_cells_may_hold_line_breaks_and_quotes_across_upload_pieces(
    client: TestClient, session_factory
) -> None:  # type: ignore[no-untyped-def]
    # 600 kB: the upload reaches the reader in several pieces, cut inside quoted cells.
    long = [
        {**row, "uid": f"{row['uid']}-{n}", "problem": row["problem"] + '\n"more"\n' * 2_000}
        for n in range(12)
        for row in ROWS
    ]
    response = upload_prompts(client, "p.csv", csv_bytes(long))
    assert response.status_code == 201, response.text
    assert [question for _, question, _ in stored_prompts(session_factory)] == [
        row["problem"] for row in long
    ]


def prompt_count(session_factory) -> int:  # type: ignore[no-untyped-def]
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Prompt)) or 0


@pytest.mark.parametrize("table", ["csv", "parquet"])
def test_a_mapped_column_missing_from_the_table_is_a_422_naming_it(
    client: TestClient, session_factory, table: str
) -> None:  # type: ignore[no-untyped-def]
    columns = {**MAPPING, "question": "prompt_text"}
    response = upload_prompts(client, f"p.{table}", ENCODERS[table](ROWS), columns=columns)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "columns.question: no column 'prompt_text' in the file; "
        "its columns: uid, problem, solution, level"
    )
    assert prompt_count(session_factory) == 0


def test_a_jsonl_row_without_a_mapped_key_is_a_422_naming_the_row(
    client: TestClient, session_factory
) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {"problem": "a?", "solution": "A", "uid": "p1"},
        {"problem": "No solution here?", "uid": "p9"},
    ]
    response = upload_prompts(client, "p.jsonl", jsonl_bytes(rows))
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "file line 2: columns.reference_answer: no key 'solution' in this row"
    )
    assert prompt_count(session_factory) == 0


def test_bad_mappings_and_bad_rows_are_422s_that_name_the_problem(
    client: TestClient, session_factory
) -> None:  # type: ignore[no-untyped-def]
    def detail(name: str, body: bytes, columns: object = MAPPING, **fields: str) -> str:
        response = upload_prompts(client, name, body, columns, **fields)
        assert response.status_code == 422, response.text
        return response.json()["detail"]

    body = csv_bytes(ROWS)
    assert detail("p.csv", body, {"questoin": "problem"}) == (
        "columns: unknown field 'questoin' (did you mean 'question'?); "
        "fields: id, question, reference_answer, metadata, answers"
    )
    assert detail("p.csv", body, "[1]") == (
        'columns: must be a JSON object like {"question": "problem"}'
    )
    assert (
        detail("p.csv", body, {"question": 3}) == "columns.question: must be a column name, got 3"
    )
    assert detail("p.csv", body, format="xlsx") == (
        "format: must be one of jsonl, csv, parquet, got 'xlsx'"
    )
    blank = [ROWS[0], {**ROWS[1], "problem": "  "}]
    assert detail("p.csv", csv_bytes(blank)) == (
        "file row 2: question: Value error, must not be blank"
    )
    too_many = b"uid,problem,solution\np1,a,A,extra\n"
    assert detail("p.csv", too_many) == "file row 1: 4 cells, the header names 3 columns"
    assert detail("p.parquet", b"PAR1 not really").startswith("file: not a Parquet file")
    assert prompt_count(session_factory) == 0


def test_mapping_sent_after_the_file_is_refused(settings: Settings, session_factory) -> None:  # type: ignore[no-untyped-def]
    boundary = "b0undary"
    # Rows a reader without the mapping takes too (a `question` column), so nothing but the
    # late field can be refused.
    many = [
        {"question": "q?", **ROWS[0], "uid": f"p{n}", "problem": "x" * 1000} for n in range(400)
    ]
    pieces = [
        f"--{boundary}\r\n".encode(),
        b'Content-Disposition: form-data; name="file"; filename="p.csv"\r\n\r\n',
        csv_bytes(many),  # 400 kB: read before the mapping comes
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="columns"\r\n\r\n'
        f"{json.dumps(MAPPING)}\r\n--{boundary}--\r\n".encode(),
    ]
    with live_api(settings, api_key(session_factory)) as api:
        response = httpx.post(
            f"{api.url}/v1/batches",
            content=iter(pieces),
            headers={
                "content-type": f"multipart/form-data; boundary={boundary}",
                **bearer(api.key),
            },
        )
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "columns: send this form field before the file, not after it"
    )


@pytest.mark.parametrize("table", ["csv", "parquet"])
def test_the_prompt_limit_stops_the_reading(
    client: TestClient, settings: Settings, table: str
) -> None:
    from app.main import create_app

    app = create_app(settings.model_copy(update={"max_prompts_per_batch": 2}))
    with TestClient(app, headers=dict(client.headers)) as small:
        response = upload_prompts(small, f"p.{table}", ENCODERS[table](ROWS))
    assert response.status_code == 422
    expected = {
        "csv": "prompts: at most 2 per batch; the file has more (row 3 holds prompt 3)",
        "parquet": "prompts: at most 2 per batch; the file has 3 rows",
    }
    assert response.json()["detail"] == expected[table]


EVAL_ROWS = [
    {"uid": "e1", "problem": "What is 3 + 3?", "solution": "6", "topic": "arith"},
    {"uid": "e2", "problem": "Capital of France?", "solution": "Paris", "topic": "geo"},
]


@pytest.mark.parametrize("table", ["csv", "parquet"])
def test_an_eval_file_from_a_table_is_stored_as_jsonl_of_its_mapped_rows(
    client: TestClient, settings: Settings, session_factory, table: str
) -> None:  # type: ignore[no-untyped-def]
    ids = [1, 2] if table == "parquet" else ["e1", "e2"]  # Parquet: an integer id column
    rows = [{**row, "uid": uid} for row, uid in zip(EVAL_ROWS, ids, strict=True)]
    columns = {**MAPPING, "metadata.task": "topic"}
    response = client.post(
        "/v1/files",
        data={"purpose": "eval", "columns": json.dumps(columns)},
        files={"file": (f"questions.{table}", ENCODERS[table](rows))},
    )
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["lines"] == 2
    lines = uploaded_file_path(settings.files_dir, stored["id"]).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "question": row["problem"],
            "reference_answer": row["solution"],
            "id": str(row["uid"]),
            "metadata": {"task": row["topic"]},
        }
        for row in rows
    ]


def test_a_bad_eval_table_is_a_422_naming_the_row_and_stores_nothing(
    client: TestClient, session_factory
) -> None:  # type: ignore[no-untyped-def]
    rows = [EVAL_ROWS[0], {**EVAL_ROWS[1], "solution": ""}]
    response = client.post(
        "/v1/files",
        data={"purpose": "eval", "columns": json.dumps(MAPPING)},
        files={"file": ("questions.csv", csv_bytes(rows))},
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "file row 2: reference_answer: Field required"
    missing = client.post(
        "/v1/files",
        data={"purpose": "eval", "columns": json.dumps({"question": "query"})},
        files={"file": ("questions.parquet", parquet_bytes(rows))},
    )
    assert missing.status_code == 422
    assert missing.json()["detail"].startswith("columns.question: no column 'query' in the file")
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(TrainingFile)) == 0


def test_csv_read_a_few_bytes_at_a_time_gives_the_same_rows() -> None:
    text = (
        '\ufeffuid,problem\r\np1,"Zürich ""quoted""\r\nline two"\r\n'
        'p2,€ plain\r\n\r\np3,"last, no newline"'
    )
    data = text.encode()
    found: list[tuple[str, dict]] = []
    reader = CsvReader(
        Rows(
            {"question": "problem", "id": "uid"},
            ["id", "question"],
            lambda row, place: found.append((place, row)),
        ),
        before_row=lambda place: None,
    )
    for start in range(0, len(data), 3):  # cuts through multi-byte characters and quoted cells
        reader.feed(data[start : start + 3])
    reader.finish()
    assert found == [
        ("file row 1", {"question": 'Zürich "quoted"\r\nline two', "id": "p1"}),
        ("file row 2", {"question": "€ plain", "id": "p2"}),
        ("file row 3", {"question": "last, no newline", "id": "p3"}),
    ]


def test_csv_with_an_unclosed_quote_names_the_row() -> None:
    reader = CsvReader(Rows({}, ["question"], lambda row, place: None), before_row=lambda p: None)
    reader.feed(b'question\n"fine"\n"never closed\n')
    with pytest.raises(InvalidInputError, match="file row 2: a quoted cell is not closed"):
        reader.finish()
