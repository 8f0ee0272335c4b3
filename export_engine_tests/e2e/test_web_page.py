"""The web page in a real browser (Debian's Chromium driven by Playwright) against the real stack.

Each modal state is saved as a screenshot under `WEB_SCREENSHOTS_DIR` (default: a temp dir); the
README's pictures come from `WEB_SCREENSHOTS_DIR=docs/web`.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jwt
import psycopg2
import pytest

from api.security import issue_token
from export_engine.settings import DEV_JWT_SECRET
from export_engine_tests import faults, required_tools
from export_engine_tests.conftest import TELEGRAM_PORT, TELEGRAM_SECRET, TELEGRAM_TOKEN
from export_engine_tests.notify_peers import FakeTelegram

pytestmark = pytest.mark.e2e

CHROMIUM = required_tools.chromium_or_skip_module()  # CI (REQUIRE_TOOLS=1) fails instead of skipping
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STATE_TIMEOUT_MS = 120_000  # a hang guard: exports here take seconds, the page polls every 5 s

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright gives the browser a new temporary profile itself (it refuses --user-data-dir here).
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    target = Path(os.environ.get("WEB_SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="web-screenshots-"))
    target.mkdir(parents=True, exist_ok=True)
    return target


class Site:
    """Opens the gateway's pages in fresh browser contexts; records every request that left the origin."""

    def __init__(self, browser: Browser, base_url: str, s3_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.s3_url = s3_url
        self.contexts: list = []
        self.foreign_requests: list[str] = []

    def open(
        self, path: str, *, user: str | None = None, token: str | None = None, width: int = 1000
    ) -> Page:
        context = self.browser.new_context(viewport={"width": width, "height": 900}, accept_downloads=True)
        self.contexts.append(context)
        origin = urlsplit(self.base_url).netloc
        # An air gap: every request that leaves the gateway's origin (or the signed S3 URL) is refused.
        allowed = {origin, urlsplit(self.s3_url).netloc, ""}
        context.route(
            lambda url: urlsplit(url).netloc not in allowed,
            lambda route: (self.foreign_requests.append(route.request.url), route.abort()),
        )
        page = context.new_page()
        if user is not None:
            token = issue_token(user, secret=DEV_JWT_SECRET)
        page.goto(f"{self.base_url}{path}" + (f"#token={token}" if token else ""))
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def site(browser: Browser, api) -> Iterator[Site]:
    site = Site(browser, api.stack.api_url, api.stack.env["S3_ENDPOINT_URL"])
    yield site
    site.close()


def source_rows(api, statement: str, *params: object) -> list[tuple]:
    with psycopg2.connect(api.stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall()


def open_export_modal(page: Page, dataset_name: str) -> None:
    page.get_by_role("button", name=f"Export {dataset_name}", exact=True).click()
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.get_by_role("heading", name=f"Export: {dataset_name}")).to_be_visible()


def newest_export(api, user: str) -> dict:
    return api.http.get("/export", params={"limit": 1}, headers=api.headers(user)).json()["items"][0]


def test_datasets_page_shows_a_card_per_dataset(api, site, shots):
    page = site.open("/analytics/datasets", user="demo-user-60")
    expect(page.get_by_role("heading", name="Datasets", level=1)).to_be_visible()
    expect(page.get_by_text("Export your financial data for external analysis")).to_be_visible()
    catalog = api.http.get("/datasets", headers=api.headers("demo-user-60")).json()["datasets"]
    cards = page.locator("#dataset-list > li")
    expect(cards).to_have_count(len(catalog))
    for dataset in catalog:
        card = cards.filter(has=page.get_by_role("heading", name=dataset["name"], exact=True))
        expect(card).to_contain_text(dataset["description"])
        expect(card).to_contain_text(f"Time grain: {dataset['time_grain']}")
        expect(card.get_by_role("button", name=f"Export {dataset['name']}")).to_be_visible()
    expect(page.get_by_text("Time grain: monthly")).to_be_visible()
    # The requirements' order (Transactions first), then the rest; descriptions speak to the user.
    titles = page.locator("#dataset-list > li h2").all_inner_texts()
    assert titles[:3] == ["Transactions", "Daily spending by tag", "Monthly trends"], titles
    descriptions = page.locator("#dataset-list > li p:not(.grain)").all_inner_texts()
    assert descriptions[0].startswith("All your transactions with tags and accounts"), descriptions
    assert not [d for d in descriptions if "caller" in d or "tag_id" in d], descriptions
    assert "#token" not in page.url  # the token left the address bar for session storage
    page.screenshot(path=shots / "datasets.png")
    assert site.foreign_requests == []


def test_export_with_filters_completes_and_downloads_the_signed_file(api, site, shots):
    user = "demo-user-61"
    page = site.open("/analytics/datasets", user=user)
    open_export_modal(page, "Transactions")
    expect(page.get_by_role("radio", name="CSV", exact=True)).to_be_checked()
    for label in ("Parquet", "JSON Lines", "JSON", "Excel", "CSV (gzip)"):
        expect(page.get_by_role("radio", name=label, exact=True)).to_be_visible()

    accounts = [
        r[0]
        for r in source_rows(
            api, "SELECT DISTINCT account_id FROM transactions WHERE user_id = %s ORDER BY 1", user
        )
    ]
    tags = [
        r[0]
        for r in source_rows(
            api, "SELECT DISTINCT unnest(tag_ids) FROM transactions WHERE user_id = %s ORDER BY 1", user
        )
    ]
    # Searchable pickers, not list boxes: "Select accounts..." opens a list with a search box.
    tag_picker = page.get_by_label("Tags (optional)")
    expect(tag_picker).to_have_text(re.compile(r"^Select tags\.\.\."))
    tag_picker.click()
    expect(page.get_by_role("group", name="Tags", exact=True).get_by_role("checkbox")).to_have_count(
        len(tags)
    )
    page.keyboard.press("Escape")  # closes the list, not the dialog
    expect(page.get_by_label("Search tags")).to_be_hidden()
    expect(page.get_by_role("dialog")).to_be_visible()

    account_picker = page.get_by_label("Accounts (optional)")
    expect(account_picker).to_have_text(re.compile(r"^Select accounts\.\.\."))
    expect(account_picker).to_have_attribute("aria-expanded", "false")
    account_picker.click()
    account_list = page.get_by_role("group", name="Accounts", exact=True)
    expect(account_list.get_by_role("checkbox")).to_have_count(len(accounts))
    assert account_list.locator("label").all_inner_texts() == accounts
    chosen = accounts[0]
    query = chosen[-4:]
    page.get_by_label("Search accounts").fill(query)
    matching = [a for a in accounts if query.lower() in a.lower()]
    expect(account_list.get_by_role("checkbox")).to_have_count(len(matching))
    assert len(matching) < len(accounts)
    account_list.get_by_role("checkbox", name=chosen, exact=True).check()
    page.get_by_role("dialog").screenshot(path=shots / "modal-picker.png", animations="disabled")
    page.get_by_role("button", name="Done").click()
    expect(account_picker).to_have_text(re.compile(rf"^{re.escape(chosen)}"))
    expect(account_picker).to_be_focused()
    page.get_by_label("Start date").fill("2023-01-01")
    page.get_by_label("End date").fill("2023-06-30")
    page.locator("#columns-field summary").click()
    page.get_by_role("checkbox", name="user_id", exact=True).uncheck()
    page.get_by_role("checkbox", name="tag_ids", exact=True).uncheck()
    page.get_by_role("dialog").screenshot(path=shots / "modal-form.png", animations="disabled")
    page.get_by_role("button", name="Start Export").click()

    expect(page.get_by_text("Export in progress...")).to_be_visible()
    expect(page.locator("#progress-telegram")).to_be_hidden()  # no chat linked: no Telegram promise
    page.get_by_role("dialog").screenshot(path=shots / "modal-progress-pending.png", animations="disabled")
    expect(page.get_by_text("Export complete!")).to_be_visible(timeout=STATE_TIMEOUT_MS)
    export = newest_export(api, user)
    assert export["filters"] == {"account_ids": [chosen]}
    assert export["status"] == "COMPLETED"
    expected_rows = source_rows(
        api,
        "SELECT count(*) FROM transactions WHERE user_id = %s AND account_id = %s"
        " AND txn_date BETWEEN '2023-01-01' AND '2023-06-30'",
        user,
        chosen,
    )[0][0]
    assert export["row_count"] == expected_rows > 0
    summary = page.locator("#done-summary").inner_text()
    assert re.fullmatch(rf"{expected_rows:,} rows • [\d.]+ (B|KB)", summary), summary
    expect(page.locator("#done-expiry")).to_have_text("Link expires in 24 hours")  # a fresh 24 h link
    link = page.get_by_role("link", name="Download CSV")
    expect(link).to_have_attribute("target", "_blank")
    page.get_by_role("dialog").screenshot(path=shots / "modal-complete.png", animations="disabled")

    # The link opens a new tab whose navigation becomes a download; Chromium reports it on the opener.
    with page.expect_download() as downloaded, page.context.expect_page() as new_tab:
        link.click()
    download = downloaded.value
    assert new_tab.value.opener() == page
    signed_url = download.url
    assert signed_url.startswith(api.stack.env["S3_ENDPOINT_URL"]) and "Signature" in signed_url, signed_url
    assert re.fullmatch(  # a column subset is named apart from the full file
        r"transactions_2023-01-01_2023-06-30(_columns-filtered_[0-9a-f]+)?\.csv", download.suggested_filename
    ), download.suggested_filename
    body = Path(download.path()).read_bytes()
    assert body == httpx.get(signed_url).content
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == expected_rows
    assert {r["account_id"] for r in rows} == {chosen}
    assert list(rows[0]) == [
        c for c in _catalog_columns(api, "transactions") if c not in ("user_id", "tag_ids")
    ]
    assert site.foreign_requests == []


def _catalog_columns(api, dataset_id: str) -> list[str]:
    datasets = api.http.get("/datasets", headers=api.headers("demo-user-1")).json()["datasets"]
    (dataset,) = [d for d in datasets if d["id"] == dataset_id]
    return [c["name"] for c in dataset["columns"]]


def test_a_reused_export_goes_straight_to_complete(api, site, shots):
    user = "demo-user-62"
    first = api.post(
        user, table_name="monthly_trends", date_from="2023-01-01", date_to="2023-12-31", format="parquet"
    )
    api.wait(user, first.json()["reference_id"])
    page = site.open("/analytics/datasets", user=user)
    open_export_modal(page, "Monthly trends")
    page.get_by_role("radio", name="Parquet", exact=True).check()
    page.get_by_label("Start date").fill("2023-01-01")
    page.get_by_label("End date").fill("2023-12-31")
    page.get_by_role("button", name="Start Export").click()
    expect(page.get_by_text("Export complete!")).to_be_visible()
    expect(page.get_by_role("link", name="Download Parquet")).to_be_visible()
    expect(page.get_by_text("An identical export was already available")).to_be_visible()
    assert newest_export(api, user)["reused_from_ref"] == first.json()["reference_id"]
    page.get_by_role("dialog").screenshot(path=shots / "modal-complete-reused.png", animations="disabled")


def test_leaving_the_dates_empty_exports_everything(api, site):
    user = "demo-user-68"
    page = site.open("/analytics/datasets", user=user)
    open_export_modal(page, "Transactions")
    expect(page.get_by_text("Empty: from your first row")).to_be_visible()
    expect(page.get_by_text("Empty: up to today")).to_be_visible()
    page.get_by_role("button", name="Start Export").click()
    expect(page.get_by_text("Export complete!")).to_be_visible(timeout=STATE_TIMEOUT_MS)
    export = newest_export(api, user)
    ((rows, first_day),) = source_rows(
        api,
        "SELECT count(*), min(txn_date)::text FROM transactions WHERE user_id = %s AND txn_date <= %s",
        user,
        export["date_to"],
    )
    assert (export["date_from"], export["row_count"]) == (first_day, rows)
    expect(page.locator("#done-summary")).to_have_text(re.compile(rf"^{rows:,} rows • "))


def test_validation_messages_are_shown_next_to_the_field(api, site, shots):
    page = site.open("/analytics/datasets", user="demo-user-63")
    open_export_modal(page, "Transactions")
    before = api.export_count()

    page.locator("#columns-field summary").click()  # client side: no column left, nothing is sent
    for box in page.locator("#column-options input[type=checkbox]").all():
        box.uncheck()
    page.get_by_role("button", name="Start Export").click()
    expect(page.locator("#error-columns")).to_have_text("Choose at least one column.")
    page.locator("#column-options input[type=checkbox]").first.check()

    page.get_by_label("Start date").fill("2024-03-01")  # server side: the 422 names date_to
    page.get_by_label("End date").fill("2024-01-31")
    page.get_by_role("button", name="Start Export").click()
    expect(page.locator("#error-date_to")).to_have_text(
        "date_from (2024-03-01) is after date_to (2024-01-31)"
    )
    expect(page.locator("#error-date_from")).to_be_hidden()
    expect(page.get_by_label("End date")).to_have_attribute("aria-invalid", "true")
    page.get_by_role("dialog").screenshot(path=shots / "modal-validation.png", animations="disabled")
    assert api.export_count() == before


def test_progress_bar_then_cancel(api, site, shots):
    admin = api.stack.env["SOURCE_ADMIN_URL"]
    page = site.open("/analytics/datasets", user="USD")
    open_export_modal(page, "test: slow")
    faults.arm(admin, "slow", seconds=300)
    try:
        page.get_by_label("Start date").fill("2019-01-01")
        page.get_by_label("End date").fill("2021-09-30")
        page.get_by_role("button", name="Start Export").click()
        bar = page.get_by_role("progressbar", name="Export progress")
        expect(page.locator("#progress-text")).to_have_text(
            re.compile(r"[1-9][\d,]* rows written of (about )?[\d,]+ \(\d+%\)"), timeout=STATE_TIMEOUT_MS
        )
        expect(bar).to_be_visible()
        export = newest_export(api, "USD")
        assert export["status"] == "RUNNING"
        status = api.get("USD", export["reference_id"]).json()
        assert status["rows_estimated"] > 0 and 0 <= status["progress"] <= 99, status
        page.get_by_role("dialog").screenshot(path=shots / "modal-progress.png", animations="disabled")
        page.get_by_role("button", name="Cancel export").click()
        expect(page.get_by_text("Export canceled")).to_be_visible()
        assert api.get("USD", export["reference_id"]).json()["status"] == "CANCELED"
        page.get_by_role("dialog").screenshot(path=shots / "modal-canceled.png", animations="disabled")
        run_id = api.export_rows(reference_id=export["reference_id"])[0][2]
        api.wait_run_ended(export["reference_id"], run_id)
    finally:
        faults.disarm(admin, "slow")


def test_failed_export_shows_the_reason(api, site, shots):
    page = site.open("/analytics/datasets", user="demo-user-64")
    open_export_modal(page, "test: vanished")
    page.get_by_label("Start date").fill("2023-01-01")
    page.get_by_label("End date").fill("2023-01-31")
    page.get_by_role("button", name="Start Export").click()
    expect(page.get_by_text("Export failed")).to_be_visible(timeout=STATE_TIMEOUT_MS)
    reason = newest_export(api, "demo-user-64")["error"]
    expect(page.locator("#failed-reason")).to_have_text(reason)
    page.get_by_role("dialog").screenshot(path=shots / "modal-failed.png", animations="disabled")


def test_closing_the_modal_stops_polling(api, site):
    page = site.open("/analytics/datasets", user="demo-user-65")
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if re.search(r"/export/[0-9a-f-]{36}$", r.url) else None)
    open_export_modal(page, "Daily spending by tag")
    page.get_by_label("Start date").fill("2023-02-01")
    page.get_by_label("End date").fill("2023-02-28")
    page.get_by_role("button", name="Start Export").click()
    expect(page.get_by_text("Export in progress...")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    seen = len(polls)
    time.sleep(6)  # longer than one polling interval
    assert len(polls) == seen


def test_history_lists_exports_and_deletes_a_file(api, site, shots):
    user = "demo-user-66"
    done = api.post(
        user, table_name="transactions", date_from="2023-03-01", date_to="2023-03-31", format="jsonl"
    )
    api.wait(user, done.json()["reference_id"])
    page = site.open("/analytics/exports", user=user)
    row = page.locator(f"tr[data-reference-id='{done.json()['reference_id']}']")
    expect(row).to_contain_text("COMPLETED")
    expect(row).to_contain_text("Transactions")
    expect(row).to_contain_text("2023-03-01 – 2023-03-31")
    expect(row.get_by_role("link", name=re.compile("Download"))).to_have_text("Download JSON Lines")
    page.screenshot(path=shots / "history.png", full_page=True)
    page.on("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("Delete the file")).click()
    expect(row).to_contain_text("EXPIRED")
    assert api.get(user, done.json()["reference_id"]).json()["status"] == "EXPIRED"


def test_history_pages_with_the_cursor(api, site):
    user = "demo-user-67"
    first = api.post(
        user, table_name="monthly_trends", date_from="2020-01-01", date_to="2022-12-31", format="json"
    )
    api.wait(user, first.json()["reference_id"])
    for _ in range(22):  # 23 exports, two pages of 20, one run: the other 22 reuse its file
        assert (
            api.post(
                user, table_name="monthly_trends", date_from="2020-01-01", date_to="2022-12-31", format="json"
            ).json()["status"]
            == "COMPLETED"
        )
    page = site.open("/analytics/exports", user=user)
    expect(page.locator("#history-rows > tr")).to_have_count(20)
    page.get_by_role("button", name="Load more").click()
    expect(page.locator("#history-rows > tr")).to_have_count(23)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "You are not signed in."),
        (
            jwt.encode(
                {"sub": "demo-user-68", "exp": int(time.time()) - 60}, DEV_JWT_SECRET, algorithm="HS256"
            ),
            "Your sign-in expired on",
        ),
        (issue_token("demo-user-68", secret="x" * 40), "Your sign-in is not valid any more"),
    ],
    ids=["missing", "expired", "bad-signature"],
)
def test_missing_or_expired_token_shows_a_sign_in_message(site, shots, token, message):
    page = site.open("/analytics/datasets", token=token)
    notice = page.get_by_role("alert")
    expect(notice).to_contain_text("Sign in needed")
    expect(notice).to_contain_text(message)
    expect(page.get_by_label("Access token")).to_be_focused()
    if token is not None and "expired" in message:
        page.screenshot(path=shots / "signin-expired.png")
    page.get_by_label("Access token").fill(issue_token("demo-user-68", secret=DEV_JWT_SECRET))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Export Transactions")).to_be_visible()


def test_usable_at_375_px(site, shots):
    page = site.open("/analytics/datasets", user="demo-user-69", width=375)
    open_export_modal(page, "Transactions")
    page.get_by_label("Accounts (optional)").click()
    expect(
        page.get_by_role("group", name="Accounts", exact=True).get_by_role("checkbox").first
    ).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.keyboard.press("Escape")
    page.get_by_role("dialog").screenshot(path=shots / "modal-form-375.png", animations="disabled")
    page.keyboard.press("Escape")
    page.goto(f"{site.base_url}/analytics/exports")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


@pytest.mark.parametrize(("path", "rendered"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")])
def test_api_docs_render_offline(site, shots, path, rendered):
    page = site.open(path)
    # a hang guard, not a speed check: the bundles are megabytes of JavaScript on a busy machine
    expect(page.locator(rendered).first).to_contain_text("Export engine", timeout=60_000)
    if path == "/docs":
        expect(
            page.locator(".opblock-summary-path").filter(has_text="/export/{reference_id}").first
        ).to_be_visible()
        page.screenshot(path=shots / "docs.png")
        assert site.foreign_requests == []
    else:  # ReDoc's sidebar logo is an <img> from its CDN that removes itself when it fails to load
        assert set(site.foreign_requests) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram(token=TELEGRAM_TOKEN, port_=TELEGRAM_PORT).start()
    yield fake
    fake.stop()


def test_telegram_is_connected_from_the_page_and_the_progress_promises_a_message(api, site, shots, telegram):
    user, chat_id = "demo-user-70", 7070
    page = site.open("/analytics/datasets", user=user)
    panel = page.get_by_role("region", name="Telegram notifications")
    expect(panel).to_contain_text("Get a Telegram message when an export is ready.")
    panel.get_by_role("button", name="Connect Telegram").click()
    link = panel.get_by_role("link", name="Open Telegram")
    expect(link).to_have_attribute("href", re.compile(rf"^https://t\.me/{telegram.username}\?start=[\w-]+$"))
    expect(link).to_have_attribute("target", "_blank")
    expect(panel).to_contain_text("Waiting for Telegram")
    page.screenshot(path=shots / "telegram-connect.png")
    code = link.get_attribute("href").split("start=")[1]
    # The user presses Start in Telegram: Telegram posts the update to the gateway's webhook.
    pressed = api.http.post(
        "/notifications/telegram/webhook",
        json=telegram.start_update(chat_id, f"/start {code}"),
        headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
    )
    assert pressed.status_code == 200, pressed.text
    expect(panel).to_contain_text(
        "Telegram connected: you will get a message when an export is ready.", timeout=STATE_TIMEOUT_MS
    )
    assert api.http.get("/notifications/telegram", headers=api.headers(user)).json()["linked"] is True

    open_export_modal(page, "Transactions")
    page.get_by_label("Start date").fill("2023-04-01")
    page.get_by_label("End date").fill("2023-04-30")
    page.get_by_role("button", name="Start Export").click()
    expect(page.get_by_text("Export in progress...")).to_be_visible()
    expect(page.locator("#progress-telegram")).to_have_text("We'll notify you via Telegram when ready")
    page.get_by_role("dialog").screenshot(path=shots / "modal-progress-telegram.png", animations="disabled")
    expect(page.get_by_text("Export complete!")).to_be_visible(timeout=STATE_TIMEOUT_MS)
    export = newest_export(api, user)
    deadline = time.monotonic() + 120  # a hang guard: the notification sensor ticks every few seconds
    while not [
        m for m in telegram.messages if m["chat_id"] in (chat_id, str(chat_id)) and "Export" in m["text"]
    ]:
        assert time.monotonic() < deadline, telegram.messages
        time.sleep(0.2)
    (message,) = [m for m in telegram.messages if "Export" in m["text"]]
    assert "Transactions" in message["text"] and f"{export['row_count']:,}" in message["text"], message

    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    unlinking = lambda r: r.url.endswith("/notifications/telegram/link") and r.request.method == "DELETE"  # noqa: E731
    with page.expect_response(unlinking) as unlinked:
        panel.get_by_role("button", name="Disconnect Telegram").click()
    assert unlinked.value.status == 204, unlinked.value.text()
    expect(panel.get_by_role("button", name="Connect Telegram")).to_be_visible()
    assert api.http.get("/notifications/telegram", headers=api.headers(user)).json()["linked"] is False


def test_link_lifetimes_are_rounded_to_the_nearest_unit(site):
    page = site.open("/analytics/datasets", user="demo-user-71")
    seconds = [24 * 3600 - 2, 24 * 3600 - 40 * 60, 3600 - 1, 3600 - 20, 59 * 60, 90, 45, 7 * 24 * 3600 - 5]
    texts = page.evaluate(
        """async (seconds) => {
            const { formatTimeLeft } = await import("/analytics/static/api.js");
            const now = Date.now();
            return seconds.map((s) => formatTimeLeft(new Date(now + s * 1000 + 300).toISOString()));
        }""",
        seconds,
    )
    assert texts == [
        "24 hours",
        "23 hours",
        "1 hour",
        "1 hour",
        "59 minutes",
        "2 minutes",
        "45 seconds",
        "7 days",
    ]
