"""The dashboard in a real headless Chromium, against real workers sending events (-E).

A celeriac worker (prefork, 2 children): the live worker (pool and concurrency from
``inspect stats``, processed, active, load), its tasks as they run (arguments stay
text: a hostile one injects nothing), search and the detail view; and the actions end
to end, each confirmed and reported: a countdown task revoked by id never runs (the
worker discards it when due and says so), a running task revoked with terminate stops
(REVOKED in the page and the result backend), a rate limit set from the page is what
the worker reports by ``inspect registered``, a queue purged is empty. A Celery 5.7
worker: the same live view, and its countdown task revoked from the page. Charts draw
from the vendored uPlot; the console stays free of errors. With DASHBOARD_SCREENSHOTS
set to a folder (``make dashboard-screenshots``: docs/dashboard) the views are saved
there.

Every wait has a deadline of tens of seconds and nothing is timed, so a loaded 2-core
machine passes as an idle one does, only slower.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Stack

HOSTILE = "<img src=x onerror=window.__pwned=1>"
WAIT_MS = 30_000
#: the countdown revoked from the page: long enough that the revoke surely comes first
COUNTDOWN_S = 12


def _shoot(page: Any, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _page(browser: Any, prompt: str = "") -> tuple[Any, list[str]]:
    """A page that accepts every confirmation (and answers prompts with ``prompt``),
    collecting console errors."""
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept(prompt) if d.type == "prompt" else d.accept())
    return page, errors


def _eventually(check: Callable[[], Any], what: str, deadline_s: float = 30) -> Any:
    end = time.monotonic() + deadline_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s} s: {what}")
        time.sleep(0.2)


def _wait_notice(page: Any, *parts: str) -> str:
    """The notice the page shows after an action, once it holds every part."""
    try:
        page.wait_for_function(
            "parts => { const n = document.getElementById('notice');"
            " return !n.hidden && parts.every(p => n.textContent.includes(p)); }",
            arg=list(parts), timeout=WAIT_MS)
    except Exception as exc:
        raise AssertionError(f"the notice says {page.locator('#notice').inner_text()!r}, "
                             f"not {parts!r}") from exc
    text: str = page.locator("#notice").inner_text()
    return text


def _worker_row(page: Any, hostname: str, cells: dict[int, str]) -> None:
    """Wait until the workers table has ``hostname`` with these cells (index -> text;
    a text ending in ``+`` means a number at least that)."""
    page.wait_for_function(
        """([host, cells]) => [...document.querySelectorAll('#workers-table tbody tr')]
             .some(r => r.cells[0].textContent === host && Object.entries(cells).every(
               ([i, want]) => want.endsWith('+')
                 ? Number(r.cells[i].textContent) >= Number(want.slice(0, -1))
                 : r.cells[i].textContent === want))""",
        arg=[hostname, {str(k): v for k, v in cells.items()}], timeout=WAIT_MS)


def _task_state(page: Any, task_id: str, state: str) -> None:
    page.fill("#task-search", task_id)
    page.wait_for_function(
        "([id, state]) => [...document.querySelectorAll('#tasks-table tbody tr')]"
        ".some(r => r.dataset.uuid === id && r.cells[2].textContent === state)",
        arg=[task_id, state], timeout=WAIT_MS * 2)


def _open_detail(page: Any, search: str) -> None:
    page.fill("#task-search", search)
    page.wait_for_function(
        "() => document.querySelectorAll('#tasks-table tbody tr').length === 1",
        timeout=WAIT_MS)
    page.locator("#tasks-table tbody tr").first.click()
    page.locator("#task-detail").wait_for(state="visible", timeout=WAIT_MS)


def test_celeriac_worker_live_and_actions_in_chromium(stack: Stack, browser: Any,
                                                      tmp_path: Path) -> None:
    hostname = stack.celeriac_worker("-P", "prefork", "-c", "2", wait=False)
    stack.dashboard()  # both started side by side
    stack.events_flowing()
    client = stack.celeriac_client()
    page, errors = _page(browser, prompt="5/m")

    # a countdown task, revoked by id from the page before it is due
    marker = tmp_path / "countdown-ran"
    later = client.send_task("dash.touch", (str(marker),), countdown=COUNTDOWN_S)
    page.goto(stack.url + "/#tasks")
    page.locator("#live.on").wait_for(timeout=WAIT_MS)
    page.fill("#revoke-id", later.id)
    page.click("#revoke-by-id")
    _wait_notice(page, f"Revoke of {later.id}: {hostname}: tasks {later.id} flagged "
                       "as revoked")

    done = [client.send_task("dash.add", (HOSTILE if i == 0 else f"n{i}", i))
            for i in range(6)]
    assert [r.get(timeout=60) for r in done][1] == "n1+1"
    failed = client.send_task("dash.fail")
    with pytest.raises(Exception, match="broken on purpose"):
        failed.get(timeout=60)
    slow = client.send_task("dash.sleep", (600,))
    parked = f"{stack.queue}-parked"
    for i in range(5):  # nobody consumes this queue
        client.send_task("dash.add", (i, i), queue=parked)
    client.wait_for_publishes(timeout=30)

    # workers: the live worker, its pool from inspect stats, counts from heartbeats
    page.click("nav a[data-view=workers]")
    _worker_row(page, hostname, {1: "online", 3: "celeriac 0.1.0", 4: "prefork × 2",
                                 5: "1", 6: "7+"})
    load = page.locator("#workers-table tbody tr", has_text=hostname).locator("td").nth(7)
    assert len(load.inner_text().split()) == 3
    _shoot(page, tmp_path, "workers")

    # tasks: every one in its state, the hostile argument shown as text
    page.click("nav a[data-view=tasks]")
    page.fill("#task-search", "")
    page.wait_for_function(
        "() => document.querySelectorAll('#tasks-table tbody tr').length >= 8",
        timeout=WAIT_MS)
    rows = page.locator("#tasks-table tbody tr")
    assert rows.filter(has_text="SUCCESS").count() == 6
    assert rows.filter(has_text="FAILURE").count() == 1
    assert rows.filter(has_text="STARTED").count() == 1
    assert HOSTILE in page.locator("#tasks-table").inner_text()
    assert page.locator("#tasks-table img").count() == 0
    assert page.evaluate("window.__pwned") is None
    _open_detail(page, "dash.fail")
    assert "broken on purpose" in page.locator("#task-detail").inner_text()
    assert page.locator("#detail-timeline li").count() >= 3  # received, started, failed

    # revoke and terminate the running task, from its detail
    _open_detail(page, slow.id)
    page.click("#terminate")
    _wait_notice(page, f"Revoke and terminate of {slow.id}: {hostname}: terminate: "
                       f"{slow.id}")
    page.wait_for_function(
        "() => document.querySelector('#detail-fields').textContent.includes('REVOKED')"
        " && document.querySelector('#detail-timeline').textContent"
        ".includes('task-revoked')", timeout=WAIT_MS)
    assert "terminated\ntrue" in page.locator("#detail-fields").inner_text()
    _eventually(lambda: slow.state == "REVOKED", "the terminated task REVOKED")
    _shoot(page, tmp_path, "task-detail")
    _worker_row(page, hostname, {5: "0"})  # nothing runs any more

    # a rate limit from a task's detail: the worker reports it by inspect registered
    _open_detail(page, "n2")
    page.click("#rate-limit")
    _wait_notice(page, f"Rate limit of dash.add to 5/m: {hostname}: new rate limit set "
                       "successfully.")
    registered = client.control.inspect(timeout=5).registered("rate_limit")
    assert "dash.add [rate_limit=5/m]" in registered[hostname]
    page.click("#close-detail")
    page.fill("#task-search", "")
    page.wait_for_function(
        "() => document.querySelectorAll('#tasks-table tbody tr').length >= 8",
        timeout=WAIT_MS)
    _shoot(page, tmp_path, "tasks")

    # queues: the parked queue's depth, then a purge, confirmed, end to end
    page.click("nav a[data-view=queues]")
    depth = ("([queue, n]) => [...document.querySelectorAll('#queues-table tbody tr')]"
             ".some(r => r.cells[0].textContent === queue && r.cells[1].textContent === n)")
    page.wait_for_function(depth, arg=[parked, "5"], timeout=WAIT_MS)
    _shoot(page, tmp_path, "queues")
    page.locator("#queues-table tbody tr", has_text=parked).locator("button").click()
    _wait_notice(page, f"Purged 5 messages from queue {parked}.")
    page.wait_for_function(depth, arg=[parked, "0"], timeout=WAIT_MS)

    # charts: drawn by the vendored uPlot
    page.click("nav a[data-view=charts]")
    page.locator("#chart-throughput canvas").wait_for(timeout=WAIT_MS)
    assert "dash.add" in page.locator("#chart-throughput").inner_text()
    _shoot(page, tmp_path, "charts")

    # the countdown came due: the worker discarded it (its own task-revoked event) and
    # it never ran
    page.click("nav a[data-view=tasks]")
    _task_state(page, later.id, "REVOKED")
    assert not marker.exists()
    assert later.state == "REVOKED"

    # the worker stopped: offline at once (its worker-offline event)
    stack.stop_process("celeriac-worker")
    page.click("nav a[data-view=workers]")
    _worker_row(page, hostname, {1: "offline"})
    assert errors == []


def test_celery_worker_live_and_a_revoke_in_chromium(stack: Stack, browser: Any,
                                                      tmp_path: Path) -> None:
    stack.celery_worker(wait=False)
    stack.dashboard()  # both started side by side
    stack.events_flowing()
    celery = stack.celery_client()
    page, errors = _page(browser)

    # a countdown task: RECEIVED (a Celery worker holds it until due), revoked from its
    # detail first thing; the worker discards it when due
    later = celery.send_task("dash.add", ("later", 0), countdown=COUNTDOWN_S)
    page.goto(stack.url + "/#tasks")
    _task_state(page, later.id, "RECEIVED")
    _open_detail(page, later.id)
    page.click("#revoke")
    worker = page.locator("#detail-fields dd").nth(2).inner_text()  # name, state, worker
    assert worker.startswith("celery-")
    # Celery 5.7's reply names the ids as a set: "tasks {'<id>'} flagged as revoked"
    _wait_notice(page, f"Revoke of {later.id}: {worker}: tasks ", "flagged as revoked")

    done = [celery.send_task("dash.add", (HOSTILE if i == 0 else f"n{i}", i))
            for i in range(3)]
    assert [r.get(timeout=60) for r in done][1] == "n1+1"
    # the Celery worker, online, its pool from Celery's own inspect stats reply
    page.click("nav a[data-view=workers]")
    _worker_row(page, worker, {1: "online", 4: "solo × 1", 6: "3+"})
    assert "celery 5." in page.locator("#workers-table").inner_text()

    page.click("nav a[data-view=tasks]")
    page.click("#close-detail")
    page.fill("#task-search", "")
    page.wait_for_function(
        "() => document.querySelectorAll('#tasks-table tbody tr').length >= 4",
        timeout=WAIT_MS)
    assert HOSTILE in page.locator("#tasks-table").inner_text()
    assert page.locator("#tasks-table img").count() == 0
    assert page.evaluate("window.__pwned") is None
    _task_state(page, later.id, "REVOKED")
    assert later.state == "REVOKED"
    assert errors == []
