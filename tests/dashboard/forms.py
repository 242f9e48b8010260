"""Posting the dashboard's forms as a browser does, outside a browser: with the page's CSRF
token, from the dashboard's origin."""

from __future__ import annotations

import re

import httpx

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def csrf_token_of(html: str) -> str:
    """The CSRF token a dashboard page gives its forms (and scripts, in its meta tag)."""
    match = CSRF_META.search(html)
    assert match, "the page has no csrf-token meta tag"
    return match.group(1)


def sign_in_token(client: httpx.Client) -> str:
    """The sign-in form's token; the client keeps the cookie the token is bound to."""
    form = client.get("/dashboard/login")
    assert form.status_code == 200, form.text
    return csrf_token_of(form.text)


def sign_in_client(client: httpx.Client, key: str) -> httpx.Response:
    """Sign in as a browser does: the form's token, the request from the dashboard's origin."""
    token = sign_in_token(client)
    return client.post(
        "/dashboard/login",
        data={"key": key, "csrf_token": token},
        headers={"Origin": str(client.base_url).rstrip("/")},
        follow_redirects=False,
    )
