"""The example apps (examples/) in headless Chromium, each frontend built as scripts/test.sh builds it.

Each example's page is served by the examples' Python server (examples/server/app.py, through
tests/example_server.py, which adds a route that reports how each run ended) on the scripted
agent. In each, the test sends a message and sees the reasoning, the answer, the three tool
results arriving in call order, the live task list and the sources; presses Stop mid-answer and
checks that the server cancelled the run; and sees an error. With the AI SDK's ``useChat`` it
also reloads the page mid-answer and sees the answer resume from the server. And in each, it asks
to book a train: the call waits with Approve and Deny, and the click decides whether the server
books (the result and the answer go on in the same message) or sends the denial.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import ANY
from urllib.parse import quote

import pytest
from demo_process import get_json
from playwright.sync_api import Browser, Page, sync_playwright
from server_process import HOST, TESTS_DIR, ServerProcess
from test_demo_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS

from assistant_stream_ce.demo.agent import TOOL_NAMES

EXAMPLES = TESTS_DIR.parent / "examples"
#: Each example on the server stack its browser tests run it on: the AI SDK's on asyncio and trio.
EXAMPLE_SERVERS = [
    ("ai-sdk", "uvicorn"),
    ("ai-sdk", "hypercorn-trio"),
    ("assistant-ui", "uvicorn"),
    ("ag-ui", "uvicorn"),
]
#: The scripted agent's pace: a run takes about two seconds, long enough to stop or reload it midway.
PACE = "0.5"

# Records each distinct list of tools that show a result in the newest answer, and each distinct
# rendering of its task list, so the test sees how they changed over the run.
_WATCH = """() => {
  window.resultLog = [];
  window.taskLog = [];
  const last = (selector) => [...document.querySelectorAll(selector)].pop();
  const record = (log, now) => { if (now !== undefined && log[log.length - 1] !== now) log.push(now); };
  const snapshot = () => {
    const message = last("[data-testid=assistant-message]");
    if (message) {
      record(window.resultLog, [...message.querySelectorAll("[data-testid=tool-call]")]
        .filter((call) => call.querySelector("[data-testid=tool-result]"))
        .map((call) => call.dataset.toolName).join(" "));
    }
    const tasks = last("[data-testid=tasks]");
    if (tasks) {
      record(window.taskLog, [...tasks.querySelectorAll("[data-testid=task]")]
        .map((li) => `${li.dataset.taskId}=${li.dataset.status}`).join(" "));
    }
  };
  window.watcher?.disconnect();
  window.watcher = new MutationObserver(snapshot);
  window.watcher.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
}"""


def _server(example: str, server: str) -> ServerProcess:
    env = {
        "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), str(EXAMPLES / "server")]),
        "FRONTEND_DIST": str(EXAMPLES / example / "dist"),
        "SCRIPTED_PACE": PACE,
    }
    if server == "uvicorn":
        command = [sys.executable, "-m", "uvicorn", "example_server:app", "--host", HOST, "--port"]
    else:
        command = [sys.executable, "-m", "hypercorn", "-k", "trio", "example_server:app", "--bind"]
    bind = (lambda port: [f"{HOST}:{port}"]) if server != "uvicorn" else (lambda port: [str(port)])
    return ServerProcess(f"{example} on {server}", lambda port: [*command, *bind(port)], env=env)


def _outcome(server: ServerProcess, prompt: str, run: int = 1) -> str:
    """How the server's ``run``th run for ``prompt`` ended (the route waits for it to end)."""
    return str(get_json(f"{server.url}/test/outcome?prompt={quote(prompt)}&run={run}")["status"])


def _send(page: Page, prompt: str) -> None:
    page.evaluate(_WATCH)
    page.fill("#prompt", prompt)
    page.click("#send")


def _wait_until_answered(page: Page, place: str) -> None:
    answer = page.locator("[data-testid=assistant-message]", has_text=f"Here is a plan for {place}")
    answer.locator("[data-testid=task][data-task-id=answer][data-status=done]").wait_for()
    page.wait_for_selector("[data-testid=status][data-status=ready]")


def _check_answer(page: Page, place: str) -> None:
    message = page.locator("[data-testid=assistant-message]").last
    assert "run them at the same time" in message.get_by_test_id("reasoning").inner_text()
    assert message.get_by_test_id("text").all_inner_texts()[-1].strip().endswith("old town walking tour [3].")

    calls = message.get_by_test_id("tool-call")
    assert calls.evaluate_all("els => els.map((e) => e.dataset.toolName)") == list(TOOL_NAMES)
    results = [json.loads(calls.nth(i).get_by_test_id("tool-result").inner_text()) for i in range(3)]
    assert results[0]["conditions"] == "sunny spells"
    assert results[1][0]["name"] == f"{place} food market"
    assert results[2]["advice"] == "take the morning train"

    sources = message.get_by_test_id("source").all_inner_texts()
    assert len(sources) == 3
    assert f"{place} forecast" in sources[0]


def _check_live_updates(page: Page) -> None:
    """The results showed up in call order, and the task list changed while the tools ran."""
    results: list[str] = page.evaluate("window.resultLog")
    shown = [entry.split() for entry in results if entry]
    assert shown, "the tool results showed up"
    assert all(names == list(TOOL_NAMES[: len(names)]) for names in shown), f"results in call order: {shown}"
    assert shown[-1] == list(TOOL_NAMES)

    tasks: list[str] = page.evaluate("window.taskLog")
    assert tasks[-1] == " ".join(f"{task}=done" for task in ("read", *TOOL_NAMES, "answer"))
    assert any("find_events=done" in state and "get_weather=running" in state for state in tasks), (
        f"the task list showed the quick tool done while the slow one ran: {tasks}"
    )


def _stop_midway(page: Page, server: ServerProcess) -> None:
    prompt = "What about Porto?"
    _send(page, prompt)
    page.locator("[data-testid=reasoning]", has_text="asks about Porto").wait_for()
    page.click("#stop")
    assert _outcome(server, prompt) == "cancelled"
    page.wait_for_selector("[data-testid=status][data-status=ready]")
    assert "Here is a plan for Porto" not in page.inner_text("body")


def _show_error(page: Page, server: ServerProcess) -> None:
    prompt = "Show me an error"
    _send(page, prompt)
    page.locator("[data-testid=error]", has_text="The travel service is unavailable").wait_for()
    assert _outcome(server, prompt) == "error"


def _reload_midway(page: Page, server: ServerProcess) -> None:
    """useChat's ``resume``: a page reloaded mid-answer streams the rest of it from the server."""
    prompt = "Plan a weekend in Kyoto"
    _send(page, prompt)
    page.locator("[data-testid=reasoning]", has_text="asks about Kyoto").wait_for()
    with page.expect_response(lambda response: response.url.endswith("/stream")) as resumed:
        page.reload()
    assert resumed.value.status == 200, "the answer was still running, and the reloaded page resumed it"
    page.evaluate(_WATCH)
    _wait_until_answered(page, "Kyoto")
    _check_answer(page, "Kyoto")
    assert page.get_by_test_id("user-message").all_inner_texts()[-1] == prompt
    assert page.locator("[data-testid=assistant-message]", has_text="Here is a plan for Kyoto").count() == 1
    assert _outcome(server, prompt) == "completed", "the run went on while no page was attached"


def _book(page: Page, server: ServerProcess, place: str, approve: bool) -> None:
    """Ask to book; the call waits with Approve / Deny; click one and see the server act on it."""
    prompt = f"Book a train to {place}"
    _send(page, prompt)
    message = page.locator("[data-testid=assistant-message]").last
    call = message.locator("[data-testid=tool-call][data-tool-name=book_train]")
    call.get_by_test_id("approve").wait_for()
    assert _outcome(server, prompt) == "completed", "the first run ended with the call waiting"
    page.wait_for_selector("[data-testid=status][data-status=ready]")
    assert f"I can book the 08:15 train to {place}" in message.inner_text()
    assert call.get_by_test_id("tool-result").count() == 0, "the booking waits for the decision"
    assert message.locator("[data-task-id=book_train][data-status=waiting]").count() == 1

    call.get_by_test_id("approve" if approve else "deny").click()
    answer = f"Booked: the 08:15 train to {place}" if approve else f"Understood, I did not book the train to {place}."
    message.get_by_test_id("text").filter(has_text=answer).wait_for()
    page.wait_for_selector("[data-testid=status][data-status=ready]")
    assert _outcome(server, prompt, run=2) == "completed"
    message.locator(f"[data-task-id=book_train][data-status={'done' if approve else 'denied'}]").wait_for()
    assert call.get_by_test_id("approve").count() == 0
    assert call.get_by_test_id("deny").count() == 0
    assert page.locator("[data-testid=assistant-message]", has_text=answer).count() == 1
    assert f"I can book the 08:15 train to {place}" in message.inner_text(), "the answer went on in its message"

    result = call.get_by_test_id("tool-result").inner_text()
    booked = [booking for booking in get_json(f"{server.url}/test/bookings") if f" to {place} " in booking]
    if approve:
        assert json.loads(result) == {"booked": True, "to": place, "train": "08:15", "seats": 1, "reference": ANY}
        assert len(booked) == 1, "the server booked once"
    else:
        assert "denied" in result.lower()
        assert booked == [], "the server did not book"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is needed: apt-get install chromium (scripts/test.sh does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def _open_page(browser: Browser, example: str, server: str) -> Iterator[tuple[Page, ServerProcess]]:
    """The example's page in a fresh browser context, on its server; no page errors by the end."""
    dist = EXAMPLES / example / "dist" / "index.html"
    assert dist.exists(), f"build it first: cd examples/{example} && npm ci && npm run build (scripts/test.sh does)"
    errors: list[str] = []
    with _server(example, server) as app:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(app.url)
            page.wait_for_selector("[data-testid=status][data-status=ready]")
            yield page, app
        finally:
            context.close()
    assert errors == []


@pytest.mark.parametrize(("example", "server"), EXAMPLE_SERVERS)
def test_example_in_chromium(browser: Browser, example: str, server: str) -> None:
    with _open_page(browser, example, server) as (page, app):
        _send(page, "Plan a weekend in Lisbon")
        _wait_until_answered(page, "Lisbon")
        _check_answer(page, "Lisbon")
        _check_live_updates(page)
        assert _outcome(app, "Plan a weekend in Lisbon") == "completed"

        _stop_midway(page, app)
        if example == "ai-sdk":
            _reload_midway(page, app)
        _show_error(page, app)


@pytest.mark.parametrize("approve", [True, False], ids=["approve", "deny"])
@pytest.mark.parametrize(("example", "server"), EXAMPLE_SERVERS)
def test_example_approval_in_chromium(browser: Browser, example: str, server: str, approve: bool) -> None:
    with _open_page(browser, example, server) as (page, app):
        _book(page, app, "Porto", approve)
