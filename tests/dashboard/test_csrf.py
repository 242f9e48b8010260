"""CSRF tokens on the dashboard's forms: a state-changing POST without this browser's token, or
with another's, is 403 and changes nothing; sign-in included. The Cancel routes serve as the
state-changing forms. Real Postgres and Redis, no browser (test_cancel.py has the browser)."""

from __future__ import annotations

import html
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from redis import Redis

from app.kernel.config import Settings
from app.main import create_app
from tests.conftest import api_key, bearer
from tests.dashboard.conftest import submit
from tests.dashboard.forms import csrf_token_of, sign_in_client, sign_in_token
from tests.workers.test_pipeline import PROMPTS

OWN = {"Origin": "http://testserver"}


def browser(settings: Settings, key: str | None) -> TestClient:
    """A client that goes by the dashboard's cookie only, signed in with this key (or not)."""
    client = TestClient(create_app(settings), follow_redirects=False)
    client.__enter__()
    if key is not None:
        assert sign_in_client(client, key).status_code == 303
    return client


@pytest.fixture
def browsers(settings: Settings, redis: Redis, session_factory) -> Iterator[list[TestClient]]:  # type: ignore[no-untyped-def]
    """Two browsers signed in to the project `test`, each with a key (a session) of its own."""
    opened = [browser(settings, api_key(session_factory)) for _ in range(2)]
    yield opened
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def api(settings: Settings, redis: Redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(create_app(settings), headers=bearer(api_key(session_factory))) as client:
        yield client


def page_token(client: TestClient, path: str = "/dashboard") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return csrf_token_of(page.text)


def status_of(api: httpx.Client, batch_id: str) -> str:
    return str(api.get(f"/v1/batches/{batch_id}").json()["status"])


def test_a_post_without_the_token_is_refused_and_changes_nothing(
    browsers: list[TestClient], api: TestClient
) -> None:
    you, _ = browsers
    batch_id = submit(api, PROMPTS)
    refused = you.post(f"/dashboard/batches/{batch_id}/cancel", headers=OWN)
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("csrf_token: missing; send the form from")
    assert status_of(api, batch_id) == "queued"

    sign_out = you.post("/dashboard/logout", headers=OWN)
    assert sign_out.status_code == 403
    assert you.get("/dashboard").status_code == 200  # still signed in


@pytest.mark.parametrize("token", ["0" * 64, "not-a-token", "ünïcode", " "])
def test_a_post_with_a_wrong_token_is_refused(
    browsers: list[TestClient], api: TestClient, token: str
) -> None:
    you, _ = browsers
    batch_id = submit(api, PROMPTS)
    for sent in ({"data": {"csrf_token": token}}, {"headers": {"X-CSRF-Token": token.encode()}}):
        refused = you.post(
            f"/dashboard/batches/{batch_id}/cancel",
            data=sent.get("data"),
            headers={**OWN, **sent.get("headers", {})},
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"].startswith("csrf_token: ")
    assert status_of(api, batch_id) == "queued"


def test_another_sessions_token_is_refused(browsers: list[TestClient], api: TestClient) -> None:
    you, other = browsers
    batch_id = submit(api, PROMPTS)
    theirs = page_token(other)
    assert theirs != page_token(you)
    refused = you.post(
        f"/dashboard/batches/{batch_id}/cancel", data={"csrf_token": theirs}, headers=OWN
    )
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("csrf_token: not this session's token")
    assert status_of(api, batch_id) == "queued"


def test_the_sign_in_forms_token_is_good_for_signing_in_only(
    browsers: list[TestClient], api: TestClient
) -> None:
    you, _ = browsers
    batch_id = submit(api, PROMPTS)
    sign_in_only = sign_in_token(you)  # the login page, opened again while signed in
    refused = you.post(
        f"/dashboard/batches/{batch_id}/cancel", data={"csrf_token": sign_in_only}, headers=OWN
    )
    assert refused.status_code == 403
    assert status_of(api, batch_id) == "queued"


def test_the_pages_token_in_a_form_field_or_a_header_is_accepted(
    browsers: list[TestClient], api: TestClient
) -> None:
    you, _ = browsers
    token = page_token(you)
    by_form, by_script = submit(api, PROMPTS), submit(api, PROMPTS)
    cancelled = you.post(
        f"/dashboard/batches/{by_form}/cancel", data={"csrf_token": token}, headers=OWN
    )
    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == f"/dashboard/batches/{by_form}?notice=cancelled"
    fetched = you.post(
        f"/dashboard/batches/{by_script}/cancel", headers={**OWN, "X-CSRF-Token": token}
    )
    assert fetched.status_code == 303
    assert [status_of(api, by_form), status_of(api, by_script)] == ["cancelled", "cancelled"]


def test_sign_in_without_the_forms_token_is_refused(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    key = api_key(session_factory)
    with (
        TestClient(create_app(settings), follow_redirects=False) as you,
        TestClient(create_app(settings), follow_redirects=False) as other,
    ):
        sign_in_token(you)  # the form was opened: its cookie is here, its token not sent
        attempts = {
            "no token": {"key": key},
            "a wrong token": {"key": key, "csrf_token": "0" * 64},
            "another browser's token": {"key": key, "csrf_token": sign_in_token(other)},
        }
        for what, form in attempts.items():
            refused = you.post("/dashboard/login", data=form, headers=OWN)
            assert refused.status_code == 403, what
            assert refused.json()["detail"].startswith("csrf_token: "), what
            assert "findap_key" not in refused.headers.get("set-cookie", ""), what
        # A token without the cookie it is bound to (a page that never set it) fails alike.
        with TestClient(create_app(settings), follow_redirects=False) as fresh:
            cookieless = fresh.post(
                "/dashboard/login",
                data={"key": key, "csrf_token": sign_in_token(you)},
                headers=OWN,
            )
        assert cookieless.status_code == 403
        assert you.get("/dashboard").status_code == 303  # not signed in

        accepted = sign_in_client(you, key)
        assert accepted.status_code == 303
        assert accepted.cookies["findap_key"] == key


def test_a_project_cancels_only_its_own_batches(
    browsers: list[TestClient],
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    you, _ = browsers
    with TestClient(
        create_app(settings), headers=bearer(api_key(session_factory, "elsewhere"))
    ) as theirs:
        batch_id = submit(theirs, PROMPTS)
        refused = you.post(
            f"/dashboard/batches/{batch_id}/cancel",
            data={"csrf_token": page_token(you)},
            headers=OWN,
        )
        assert refused.status_code == 404
        assert f"batch {batch_id!r} not found" in html.unescape(refused.text)
        assert status_of(theirs, batch_id) == "queued"


def test_a_finished_batch_is_not_cancelled_again(
    browsers: list[TestClient], api: TestClient
) -> None:
    you, _ = browsers
    batch_id = submit(api, PROMPTS)
    form = {"csrf_token": page_token(you)}
    assert you.post(f"/dashboard/batches/{batch_id}/cancel", data=form, headers=OWN).is_redirect
    page = you.get(f"/dashboard/batches/{batch_id}?notice=cancelled").text
    assert 'data-testid="page-notice">Cancelled.</p>' in page
    assert 'action="/dashboard/batches/' not in page  # no Cancel button once cancelled

    again = you.post(f"/dashboard/batches/{batch_id}/cancel", data=form, headers=OWN)
    assert again.status_code == 409
    assert f"batch {batch_id!r} is cancelled: it can no longer be" in html.unescape(again.text)
