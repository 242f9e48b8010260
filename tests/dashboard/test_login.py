"""Signing in to the dashboard with an API key, and what happens without a usable one."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.kernel.models import ApiKey
from app.services.api_keys import revoke_key
from tests.conftest import api_key
from tests.dashboard.conftest import screenshot, sign_in
from tests.live import LiveApi


def test_pages_redirect_to_login_and_back_after_signing_in(page: Page, dashboard: LiveApi) -> None:
    page.goto(dashboard.url + "/dashboard/training-jobs")
    assert page.url.startswith(dashboard.url + "/dashboard/login?next=")
    expect(page.locator("h1")).to_have_text("Sign in")
    screenshot(page, "login")

    page.fill("#key", dashboard.key)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Training jobs")
    assert page.url == dashboard.url + "/dashboard/training-jobs"
    expect(page.get_by_test_id("project")).to_have_text("test")


def test_wrong_key_shows_the_form_again_with_the_reason(page: Page, dashboard: LiveApi) -> None:
    page.goto(dashboard.url + "/dashboard/login")
    page.fill("#key", "fdp_not-a-key")
    page.click("button[type=submit]")
    expect(page.get_by_test_id("login-error")).to_have_text("Not signed in: unknown API key.")
    expect(page.locator("#key")).to_be_visible()
    screenshot(page, "login-wrong-key")

    page.fill("#key", "")
    page.click("button[type=submit]")
    expect(page.get_by_test_id("login-error")).to_have_text("Paste an API key (fdp_…).")
    # No key kept: only the sign-in form's CSRF cookie, as closed to scripts and other sites.
    (csrf_cookie,) = page.context.cookies()
    assert csrf_cookie["name"] == "findap_csrf"
    assert csrf_cookie["httpOnly"] is True
    assert csrf_cookie["sameSite"] == "Strict"
    assert csrf_cookie["path"] == "/dashboard"


def test_key_is_kept_in_an_httponly_samesite_cookie_until_sign_out(
    page: Page, dashboard: LiveApi
) -> None:
    sign_in(page, dashboard)
    expect(page.locator("h1")).to_have_text("Batches")
    (cookie,) = page.context.cookies()
    assert cookie["value"] == dashboard.key
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/dashboard"
    assert page.evaluate("document.cookie") == ""  # out of reach of scripts

    page.click("text=Sign out")
    expect(page.get_by_test_id("notice")).to_have_text("Signed out.")
    assert [cookie["name"] for cookie in page.context.cookies()] == ["findap_csrf"]  # the form's
    page.goto(dashboard.url + "/dashboard")
    expect(page.locator("h1")).to_have_text("Sign in")


def test_revoked_key_goes_back_to_login_with_a_message(
    page: Page, dashboard: LiveApi, session_factory
) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, dashboard)
    expect(page.locator("h1")).to_have_text("Batches")
    with session_factory.begin() as session:
        for key in session.scalars(select(ApiKey)):
            revoke_key(session, key.id)

    page.reload()
    expect(page.get_by_test_id("notice")).to_have_text(
        "Your API key was revoked: sign in with another key."
    )
    page.fill("#key", dashboard.key)
    page.click("button[type=submit]")
    expect(page.get_by_test_id("login-error")).to_contain_text("was revoked")

    page.fill("#key", api_key(session_factory))
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Batches")
