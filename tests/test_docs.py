"""docs/: the API reference is what scripts/api_reference.py makes of the current OpenAPI schema,
every relative link in the docs and the README points to a file that exists, and the index
lists every page."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([*DOCS.glob("*.md"), ROOT / "README.md"])
# [text](target) outside code; images too.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "api_reference", ROOT / "scripts" / "api_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def api_reference() -> ModuleType:
    return load_script()


@pytest.fixture(scope="module")
def openapi(api_reference: ModuleType) -> dict[str, Any]:
    return api_reference.openapi_schema()


def links(page: Path) -> list[str]:
    """Link targets of a Markdown page, leaving out code blocks and inline code."""
    text = INLINE_CODE.sub("", FENCE.sub("", page.read_text()))
    return LINK.findall(text)


def test_api_reference_matches_the_openapi_schema(
    api_reference: ModuleType, openapi: dict[str, Any]
) -> None:
    committed = (DOCS / "api-reference.md").read_text()
    assert committed == api_reference.render(openapi), (
        "docs/api-reference.md is stale: run .venv/bin/python scripts/api_reference.py"
    )


def test_api_reference_shows_every_operation_with_its_responses(
    api_reference: ModuleType, openapi: dict[str, Any]
) -> None:
    text = api_reference.render(openapi)
    sections = re.split(r"^### ", text, flags=re.MULTILINE)
    operations = [
        (method, path, operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
        if method in api_reference.METHODS
    ]
    assert len(operations) >= 20
    for method, path, operation in operations:
        [section] = [s for s in sections if s.startswith(f"`{method.upper()} {path}`\n")]
        for status in operation["responses"]:
            assert re.search(rf"^\| {status} \|", section, re.MULTILINE), (method, path, status)
        for parameter in operation.get("parameters", []):
            assert f"| `{parameter['name']}` | {parameter['in']} |" in section, (path, parameter)
    for name in openapi["components"]["schemas"]:
        assert f"### `{name}`" in text, name


def test_api_reference_documents_the_batch_request_fields(
    api_reference: ModuleType, openapi: dict[str, Any]
) -> None:
    text = api_reference.render(openapi)
    batch_create = text.split('<a id="schema-batchcreate"></a>', 1)[1].split("<a id=", 1)[0]
    assert "| `prompts` | array of [`PromptIn`](#schema-promptin) | yes |" in batch_create
    assert "`policy`" in batch_create and "`judge`" in batch_create


def test_api_reference_links_resolve_within_the_page(
    api_reference: ModuleType, openapi: dict[str, Any]
) -> None:
    text = api_reference.render(openapi)
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', text))
    targets = {target[1:] for target in re.findall(r"\]\((#[^)]+)\)", text)}
    assert targets, "the reference links to its schemas"
    assert targets <= anchors, sorted(targets - anchors)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (http:, mailto:) or an anchor on the same page
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links to missing files: {broken}"


def test_link_checker_sees_links_but_not_code(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "See [the API](api.md#limits) and ![a figure](img/x.png).\n"
        "`[not a link](nowhere.md)`\n```\n[also not](nowhere.md)\n```\n"
        "[site](https://example.com)\n"
    )
    assert links(page) == ["api.md#limits", "img/x.png", "https://example.com"]


def test_docs_index_lists_every_page() -> None:
    index = DOCS / "README.md"
    listed = {target.split("#", 1)[0] for target in links(index)}
    pages = {page.name for page in DOCS.glob("*.md")} - {"README.md"}
    assert pages <= listed, sorted(pages - listed)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_curl_examples_use_findap_url_and_findap_key(page: Path) -> None:
    """One name each: a reader sets FINDAP_URL and FINDAP_KEY once and every example works."""
    text = page.read_text()
    curls = [line for line in text.splitlines() if line.lstrip().startswith("curl ")]
    fixed = [
        line
        for line in curls
        if ("localhost:" in line or "127.0.0.1:" in line)
        and "Bearer fdp_" not in line  # what `findap up` prints, with its real URL and key
    ]
    assert not fixed, f"{page.relative_to(ROOT)}: use $FINDAP_URL: {fixed}"
    assert "export FINDAP_API_KEY" not in text and "set FINDAP_API_KEY" not in text
