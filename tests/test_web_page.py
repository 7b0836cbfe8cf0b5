"""The web chat page in a real browser: Debian's Chromium driven by Playwright against the app on a
real port. Playwright never downloads a browser here — it launches ``/usr/bin/chromium``.

Without Chromium (or the ``playwright`` package) the browser test is skipped locally and fails under
``CI=true``, where ``.ci/run`` installs Chromium first. The screenshot lands in
``test-artifacts/web-chat.png``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent.memory import open_checkpointer
from agent.models import OfflineChatModel
from agent.runner import Conversations
from tests.conftest import IN_CI
from tests.http_chat_support import serve
from tests.http_support import access_token
from tools.accounts import create_account, tenant_for_user_id
from tools.registry import invoke

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google on this closed network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parent.parent / "test-artifacts" / "web-chat.png"
TIMEOUT_MS = 15_000
SWAP_ACCESS_TOKEN = (
    "t => localStorage.setItem('igny8.auth', "
    "JSON.stringify({...JSON.parse(localStorage.getItem('igny8.auth')), value: t}))"
)


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI must run the browser test; .ci/run installs Debian's chromium)")
    pytest.skip(reason)


def _playwright() -> Any:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable(
            "the playwright package is missing: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 pip install playwright"
        )
    return async_playwright()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with _playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def client(db) -> AsyncIterator[TestClient]:
    async with open_checkpointer(db.url) as saver:
        client = await serve(db, Conversations(db, saver, OfflineChatModel()))
        try:
            yield client
        finally:
            await client.close()


async def test_the_page_and_its_assets_are_served_without_credentials(client):
    page = await client.get("/")
    html = await page.text()
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert '<script src="/static/app.js"' in html and "http" not in html.replace("http-equiv", "")
    for asset, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        response = await client.get(asset)
        assert response.status == 200 and kind in response.headers["Content-Type"], asset
    assert (await client.get("/static/../chat.py")).status in (403, 404)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # the page, not the store, is under test
async def test_sign_in_pick_a_site_chat_and_answer_a_confirmation(client, tenants, browser):
    t = await tenants.create(credits=100)
    other_site = await t.site("Second blog")
    await t.sector("News", site_id=other_site)
    a, b, *others = await t.keywords(
        "best running shoes", "trail running shoes", "running shoes for women", "marathon training plan"
    )

    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        await page.goto(str(client.make_url("/")))
        await page.fill("#api-key", t.api_key)
        await page.click("#key-form button[type=submit]")
        await page.wait_for_selector("body[data-ready='1']")
        assert await page.is_visible("#chat") and not await page.is_visible("#login")

        # The picker lists both sites; choosing the second loads its sectors, choosing back ours.
        sites = await page.eval_on_selector_all("#site option", "os => os.map(o => o.textContent)")
        assert "Second blog" in sites
        await page.select_option("#site", str(other_site))
        await page.select_option("#site", str(t.site_id))  # at once: the answers may cross
        await page.wait_for_selector(f"#sector[data-site='{t.site_id}']:not([disabled])")
        await page.wait_for_timeout(300)  # a late answer for the other site must not replace the list
        assert await page.eval_on_selector_all("#sector option", "os => os.map(o => o.text)") == ["—", "Main"]
        await page.select_option("#sector", str(t.sector_id))
        await page.select_option("#site", str(other_site))
        await page.wait_for_selector(f"#sector[data-site='{other_site}']:not([disabled])")
        assert "News" in await page.eval_on_selector_all("#sector option", "os => os.map(o => o.text)")
        await page.select_option("#site", str(t.site_id))
        await page.wait_for_selector(f"#sector[data-site='{t.site_id}']:not([disabled])")
        assert await page.input_value("#sector") == str(t.sector_id)

        await say(page, "show my keywords")
        table = page.locator(".msg.assistant table").last
        await table.wait_for()
        assert "keyword" in await table.locator("th").all_inner_texts()
        assert "best running shoes" in await table.inner_text()

        await say(page, f"delete keywords {a} and {b}")
        card = page.locator(".confirm").last
        await card.wait_for()
        assert "keywords.bulk_delete" in await card.inner_text()
        await card.locator("button[data-decision=reject]").click()
        await page.wait_for_selector(".confirm[data-decision='reject']")
        await page.locator(".msg.assistant", has_text="didn't do it").wait_for()
        assert await card.locator("button[data-decision=approve]").is_disabled()
        assert (await t.run("keywords.list")).count == 4

        await say(page, "cluster my keywords")
        await page.wait_for_selector(".job.done progress")
        await page.locator(".msg.assistant", has_text="credits used").wait_for()

        # Edit the arguments before approving: only the first keyword goes.
        await say(page, f"delete keywords {a} and {b}")
        card = page.locator(".confirm").nth(1)
        await card.wait_for()
        await card.locator("button[data-decision=edit]").click()
        await card.locator("textarea").fill(f'{{"ids": [{a}]}}')
        await card.locator("button[data-decision=approve]").click()
        await page.wait_for_selector(".confirm[data-decision='edit']")
        await page.locator(".note.ok", has_text="keywords.bulk_delete finished").wait_for()
        await wait_idle(page)
        assert {k.id for k in (await t.run("keywords.list")).results} == {*others, b}

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        # A viewport as tall as the page (rather than full_page) keeps the sticky composer in place.
        height = await page.evaluate("() => document.documentElement.scrollHeight")
        await page.set_viewport_size({"width": 1100, "height": height})
        await page.screenshot(path=str(SCREENSHOT))
        print(f"screenshot: {SCREENSHOT}")

        # A reload keeps the key and the conversation: the transcript comes back from the server.
        await page.reload()
        await page.wait_for_selector("body[data-ready='1']")
        await page.locator(".msg.user", has_text="show my keywords").wait_for()
        assert problems == []
    except Exception:
        failure = SCREENSHOT.with_name("web-chat-failure.png")
        failure.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(failure), full_page=True)
        print(f"failure screenshot: {failure}\nbrowser errors: {problems}")
        print("transcript:", await page.inner_text("#transcript"))
        raise
    finally:
        await context.close()


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_password_sign_in_and_an_expired_access_token_is_refreshed(client, db, browser):
    email, password = f"web-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
    made = await create_account(db, name="Web Co", email=email, password=password, plan="scale")
    owner = await tenant_for_user_id(db, made.user_id)
    await invoke("sites.create", {"name": "Password blog"}, db=db, tenant=owner)

    page = await browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        await page.goto(str(client.make_url("/")))
        await page.fill("#email", email)
        await page.fill("#password", "wrong password")
        await page.click("#password-form button[type=submit]")
        await page.wait_for_function("() => document.querySelector('#login-error').textContent")
        assert await page.is_visible("#login")

        await page.fill("#password", password)
        await page.click("#password-form button[type=submit]")
        await page.wait_for_selector("body[data-ready='1']")
        assert "Web Co" in await page.inner_text("#who")
        assert "Password blog" in await page.inner_text("#site")
        stored = await page.evaluate("() => JSON.parse(localStorage.getItem('igny8.auth'))")
        assert stored["kind"] == "token" and stored["refresh"]

        # Fifteen minutes later: the access token has expired, the refresh token has not.
        expired = access_token(client.server.app, owner, ttl=timedelta(seconds=-60))
        await page.evaluate(SWAP_ACCESS_TOKEN, expired)
        await page.reload()
        await page.wait_for_selector("body[data-ready='1']")
        renewed = await page.evaluate("() => JSON.parse(localStorage.getItem('igny8.auth'))")
        assert renewed["value"] not in (expired, stored["value"]) and renewed["kind"] == "token"
    finally:
        await page.close()


THEMES = (
    "running shoes",
    "espresso machine",
    "yoga mat",
    "dog food",
    "solar panel",
    "electric bike",
    "baby stroller",
    "gaming laptop",
    "hiking boots",
    "coffee grinder",
    "standing desk",
    "air fryer",
)
IMPORT_CSV = "keyword,volume\n" + "".join(
    f"best {theme},{900 + i}\ncheap {theme},{500 + i}\n{theme} reviews,{300 + i}\n"
    for i, theme in enumerate(THEMES)
)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_a_new_user_imports_clusters_and_gets_ideas_with_a_confirmation(client, tenants, browser):
    """The quick start's promise: sign in, attach a CSV, then cluster and ideate by chatting."""
    t = await tenants.create(credits=500)
    page = await browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        await page.goto(str(client.make_url("/")))
        await page.fill("#api-key", t.api_key)
        await page.click("#key-form button[type=submit]")
        await page.wait_for_selector("body[data-ready='1']")
        await page.select_option("#sector", str(t.sector_id))

        upload = {"name": "my keywords.csv", "mimeType": "text/csv", "buffer": IMPORT_CSV.encode()}
        await page.set_input_files("#file", files=[upload])
        assert "my keywords.csv" in await page.inner_text("#attached")
        await page.click("#send")  # no text: the page says what an attached CSV is for
        await page.locator(".msg.user", has_text="my keywords.csv").wait_for()
        await page.locator(".note.ok", has_text="keywords.import_csv finished").wait_for()
        assert not await page.is_visible("#attached")
        assert (await t.run("keywords.list")).count == 3 * len(THEMES)

        await say(page, "cluster my keywords")
        await page.wait_for_selector(".job.done progress")
        await wait_idle(page)
        clusters = [c.id for c in (await t.run("clusters.list", page_size=100)).results]
        assert len(clusters) >= 10  # 5 credits each: above the 50-credit confirmation threshold

        await say(page, "generate ideas for clusters " + ", ".join(map(str, clusters)))
        card = page.locator(".confirm").last
        await card.wait_for()
        assert "clusters.auto_generate_ideas" in await card.inner_text()
        await card.locator("button[data-decision=approve]").click()
        await page.locator(".note.ok", has_text="clusters.auto_generate_ideas finished").wait_for()
        await wait_idle(page)
        assert (await t.run("ideas.list")).count >= len(clusters)
    finally:
        await page.close()


async def say(page: Any, text: str) -> None:
    await wait_idle(page)
    await page.fill("#message", text)
    await page.press("#message", "Enter")
    await page.locator(".msg.user", has_text=text).last.wait_for()


async def wait_idle(page: Any) -> None:
    await page.wait_for_function("() => document.body.dataset.busy !== '1'")
