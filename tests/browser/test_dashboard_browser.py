"""The dashboard in a real headless Chromium: a live Celery 5.7 worker (-E) and its
tasks appear as events arrive, task arguments stay text (a hostile one injects
nothing), search and the detail view work, purging a queue works end to end (confirm,
POST with the CSRF token, the broker emptied, the result reported), charts draw from
the vendored uPlot, and the console stays free of errors. With DASHBOARD_SCREENSHOTS
set to a folder (``make dashboard-screenshots``: docs/dashboard) the views are saved
there."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Stack

HOSTILE = "<img src=x onerror=window.__pwned=1>"


def _shoot(page: Any, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_live_worker_tasks_and_a_purge_in_chromium(stack: Stack, browser: Any,
                                                    tmp_path: Path) -> None:
    stack.dashboard()
    stack.celery_worker()
    celery = stack.celery_client()
    done = [celery.send_task("dash.add", (HOSTILE if i == 0 else f"n{i}", i))
            for i in range(6)]
    assert [r.get(timeout=30) for r in done][1] == "n1+1"
    failed = celery.send_task("dash.fail")
    with pytest.raises(Exception, match="broken on purpose"):
        failed.get(timeout=30)
    parked = f"{stack.queue}-parked"
    client = stack.celeriac_client()
    for i in range(5):  # nobody consumes this queue
        client.send_task("dash.add", (i, i), queue=parked)
    client.wait_for_publishes(timeout=10)

    page = browser.new_page(viewport={"width": 1280, "height": 720})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(stack.url + "/#workers")

    # workers: the Celery worker, online, from its heartbeats
    worker_row = page.locator("#workers-table tbody tr", has_text="celery-")
    worker_row.wait_for(timeout=20_000)
    assert "online" in worker_row.inner_text()
    page.locator("#live.on").wait_for(timeout=10_000)
    _shoot(page, tmp_path, "workers")

    # tasks: every one, in its state; the hostile argument shown as text
    page.click("nav a[data-view=tasks]")
    page.wait_for_function(
        "() => document.querySelectorAll('#tasks-table tbody tr').length >= 7", timeout=20_000)
    rows = page.locator("#tasks-table tbody tr")
    assert rows.filter(has_text="SUCCESS").count() == 6
    assert rows.filter(has_text="FAILURE").count() == 1
    assert HOSTILE in page.locator("#tasks-table").inner_text()
    assert page.locator("#tasks-table img").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.fill("#task-search", "dash.fail")
    page.wait_for_function(
        "() => document.querySelectorAll('#tasks-table tbody tr').length === 1", timeout=10_000)
    rows.first.click()
    detail = page.locator("#task-detail")
    detail.wait_for(state="visible", timeout=10_000)
    assert "broken on purpose" in detail.inner_text()
    assert page.locator("#detail-timeline li").count() >= 3  # received, started, failed
    page.fill("#task-search", "")
    page.wait_for_function(
        "() => document.querySelectorAll('#tasks-table tbody tr').length >= 7", timeout=10_000)
    _shoot(page, tmp_path, "tasks")

    # revoke asks, then reports what happened (sent, or why it cannot be)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#revoke")
    notice = page.locator("#notice")
    notice.wait_for(state="visible", timeout=10_000)
    assert "Revoke" in notice.inner_text()

    # queues: the parked queue's depth, then a purge, confirmed, end to end
    page.click("nav a[data-view=queues]")
    parked_row = page.locator("#queues-table tbody tr", has_text=parked)
    parked_row.wait_for(timeout=20_000)
    page.wait_for_function(
        f"() => [...document.querySelectorAll('#queues-table tbody tr')].some("
        f"r => r.cells[0].textContent === '{parked}' && r.cells[1].textContent === '5')",
        timeout=20_000)
    _shoot(page, tmp_path, "queues")
    page.once("dialog", lambda dialog: dialog.accept())
    parked_row.locator("button").click()
    page.wait_for_function(
        "() => document.getElementById('notice').textContent.startsWith('Purged 5 messages')",
        timeout=10_000)
    page.wait_for_function(
        f"() => [...document.querySelectorAll('#queues-table tbody tr')].some("
        f"r => r.cells[0].textContent === '{parked}' && r.cells[1].textContent === '0')",
        timeout=20_000)

    # charts: drawn by the vendored uPlot
    page.click("nav a[data-view=charts]")
    page.locator("#chart-throughput canvas").wait_for(timeout=10_000)
    assert "dash.add" in page.locator("#chart-throughput").inner_text()
    _shoot(page, tmp_path, "charts")
    assert errors == []
