"""The dashboard's defences: forms only from its own pages and with their CSRF token, sign-out by
POST, headers that keep it out of frames and its scripts its own, and a Secure cookie behind a
TLS proxy. Real Postgres and Redis; the proxy case runs under uvicorn, whose proxy headers decide
the scheme."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from redis import Redis

from app.dashboard.security import CONTENT_SECURITY_POLICY
from app.kernel.config import Settings
from app.main import create_app
from tests.conftest import api_key
from tests.dashboard.conftest import sign_in, submit
from tests.dashboard.forms import csrf_token_of, sign_in_client, sign_in_token
from tests.live import LiveApi, live_api
from tests.workers.test_pipeline import PROMPTS

OWN = "http://testserver"
"""The origin of TestClient's requests."""
DASHBOARD = Path(__file__).resolve().parents[2] / "app" / "dashboard"


@pytest.fixture
def browser_like(settings: Settings, redis: Redis) -> Iterator[TestClient]:
    """The app with no API key header: the dashboard's own cookie is all it goes by."""
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


@pytest.fixture
def key(session_factory) -> str:  # type: ignore[no-untyped-def]
    return api_key(session_factory)


@pytest.mark.parametrize(
    "sent_from",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Referer": "https://evil.example/dashboard/login"},
        {},
    ],
    ids=["foreign-origin", "null-origin", "lookalike-origin", "foreign-referer", "neither"],
)
def test_a_sign_in_not_sent_from_the_dashboard_is_refused(
    browser_like: TestClient, key: str, sent_from: dict[str, str]
) -> None:
    response = browser_like.post("/dashboard/login", data={"key": key}, headers=sent_from)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("origin: ")
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "sent_from",
    [{"Origin": OWN}, {"Referer": f"{OWN}/dashboard/login?next=%2Fdashboard"}],
    ids=["origin", "referer"],
)
def test_a_sign_in_from_the_dashboard_keeps_the_key(
    browser_like: TestClient, key: str, sent_from: dict[str, str]
) -> None:
    token = sign_in_token(browser_like)
    response = browser_like.post(
        "/dashboard/login", data={"key": key, "csrf_token": token}, headers=sent_from
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    assert response.cookies["findap_key"] == key
    assert "secure" not in response.headers["set-cookie"].lower()  # plain http


def test_sign_out_is_a_post_from_the_dashboard_only(browser_like: TestClient, key: str) -> None:
    assert sign_in_client(browser_like, key).status_code == 303
    signed_in = browser_like.get("/dashboard")
    assert signed_in.status_code == 200
    token = {"csrf_token": csrf_token_of(signed_in.text)}

    assert browser_like.get("/dashboard/logout").status_code == 405
    foreign = browser_like.post(
        "/dashboard/logout", data=token, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert browser_like.get("/dashboard").status_code == 200  # still signed in

    signed_out = browser_like.post("/dashboard/logout", data=token, headers={"Origin": OWN})
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/dashboard/login?notice=signed_out"
    assert browser_like.get("/dashboard").status_code == 303  # to the login form
    page = browser_like.get("/dashboard/login").text
    assert 'href="/dashboard/logout"' not in page


def test_every_dashboard_response_carries_the_security_headers(
    browser_like: TestClient, key: str
) -> None:
    form = {"key": key, "csrf_token": sign_in_token(browser_like)}
    responses = [
        browser_like.get("/dashboard"),  # a redirect to the login form
        browser_like.get("/dashboard/login"),
        browser_like.get("/dashboard/static/dashboard.js"),
        browser_like.get("/dashboard/no-such-page"),
        browser_like.post("/dashboard/login", data=form),  # refused: no Origin
        browser_like.post("/dashboard/login", data={"key": key}, headers={"Origin": OWN}),
        browser_like.post("/dashboard/login", data=form, headers={"Origin": OWN}),
        browser_like.get("/dashboard"),  # signed in
    ]
    statuses = [response.status_code for response in responses]
    assert statuses == [303, 200, 200, 404, 403, 403, 303, 200]  # the 2nd 403: no token
    for response in responses:
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    # The API's interactive docs load their script from a CDN: no dashboard policy there.
    assert "content-security-policy" not in browser_like.get("/docs").headers


def test_pages_hold_no_inline_script_or_style_the_policy_would_block() -> None:
    markup = {path.name: path.read_text() for path in (DASHBOARD / "templates").glob("*.html")}
    assert markup
    for name, text in markup.items():
        assert not re.search(r"\sstyle\s*=", text), f"{name}: an inline style attribute"
        assert not re.search(r"<style", text), f"{name}: a <style> element"
        assert not re.search(r"\son[a-z]+\s*=", text), f"{name}: an inline event handler"
        assert not re.search(r"javascript:", text), f"{name}: a javascript: URL"
        for script in re.findall(r"<script[^>]*>", text):
            assert 'src="/dashboard/static/' in script, f"{name}: an inline script"


def sign_in_form_behind(live: LiveApi, headers: dict[str, str]) -> tuple[str, str]:
    """The sign-in form's Set-Cookie line and token, fetched with these headers."""
    form = httpx.get(f"{live.url}/dashboard/login", headers=headers)
    assert form.status_code == 200
    return form.headers["set-cookie"], csrf_token_of(form.text)


def test_the_cookie_is_secure_behind_a_tls_proxy_that_is_trusted(
    settings: Settings, redis: Redis, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uvicorn trusts X-Forwarded-Proto from FORWARDED_ALLOW_IPS (default: the loopback).
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    with live_api(settings, key) as live:
        host = live.url.removeprefix("http://")
        proxied = {"X-Forwarded-Proto": "https"}
        cookie, token = sign_in_form_behind(live, proxied)
        assert "; secure" in cookie.lower()  # the sign-in form's cookie as well
        response = httpx.post(
            f"{live.url}/dashboard/login",
            data={"key": key, "csrf_token": token},
            headers={**proxied, "Origin": f"https://{host}", "Cookie": cookie.split(";")[0]},
        )
    assert response.status_code == 303
    cookie = next(
        line for line in response.headers.get_list("set-cookie") if line.startswith("findap_key=")
    )
    assert "; secure" in cookie.lower()


def test_an_untrusted_proxy_cannot_claim_https(
    settings: Settings, redis: Redis, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")  # a proxy that is not this client
    with live_api(settings, key) as live:
        host = live.url.removeprefix("http://")
        proxied = {"X-Forwarded-Proto": "https"}
        cookie, token = sign_in_form_behind(live, proxied)
        assert "secure" not in cookie.lower()
        signed = {"Cookie": cookie.split(";")[0], **proxied}
        claimed = httpx.post(
            f"{live.url}/dashboard/login",
            data={"key": key, "csrf_token": token},
            headers={**signed, "Origin": f"https://{host}"},
        )
        plain = httpx.post(
            f"{live.url}/dashboard/login",
            data={"key": key, "csrf_token": token},
            headers={**signed, "Origin": live.url},
        )
    assert claimed.status_code == 403  # the page it names is not the one served here
    assert plain.status_code == 303
    kept = [line for line in plain.headers.get_list("set-cookie") if "findap_key=" in line]
    assert kept and "secure" not in kept[0].lower()


def test_no_page_breaks_its_content_security_policy_in_a_browser(
    page: Page, dashboard: LiveApi, api: httpx.Client
) -> None:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    batch_id = submit(api, PROMPTS)
    sign_in(page, dashboard)
    fill = page.locator(".progress .fill").first
    assert fill.evaluate("element => element.style.width") == "0%"  # sized by the script
    for path in (f"/dashboard/batches/{batch_id}", "/dashboard/models", "/dashboard/datasets"):
        page.goto(dashboard.url + path)
        page.wait_for_load_state("networkidle")
    page.click("text=Sign out")
    expect(page.get_by_test_id("notice")).to_have_text("Signed out.")
    assert violations == []
