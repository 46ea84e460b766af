"""The demo page in headless Chromium (Debian's ``chromium``, driven by Playwright for Python).

In each wire format the page decodes the stream itself; the test sees reasoning, text, the three
tool results in call order (held back while a later call has already finished), the task list
updating from the run state, and the sources. Then Stop cancels a run on the server, and in each
format a booking waits for the person: Approve runs it and the answer goes on, Deny shows the denial. The page
after the first answer is saved as a screenshot in the test's temporary folder; with
``UPDATE_SCREENSHOT=1`` it replaces docs/screenshot.png, the README's picture.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from demo_process import DemoProcess, get_json
from playwright.sync_api import Page, sync_playwright

from assistant_stream_ce.demo.agent import TOOL_NAMES

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
README_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshot.png"
#: Milliseconds any one thing may take to show up on the page.
TIMEOUT_MS = 20_000

FORMATS = ("data-stream", "assistant-transport", "ui-message-stream")
PLACES = ("Lisbon", "Kyoto", "Edinburgh")

# Records each distinct rendering of the task list, so the test sees how it changed over the run.
_WATCH_TASKS = """() => {
  window.taskLog = [];
  const tasks = document.getElementById("tasks");
  const snapshot = () => [...tasks.querySelectorAll("[data-testid=task]")]
    .map((li) => `${li.dataset.taskId}=${li.dataset.status}`).join(" ");
  window.taskObserver?.disconnect();
  window.taskObserver = new MutationObserver(() => {
    const now = snapshot();
    if (window.taskLog[window.taskLog.length - 1] !== now) window.taskLog.push(now);
  });
  window.taskObserver.observe(tasks, { subtree: true, childList: true, attributes: true, characterData: true });
}"""

# Once find_events is shown as finished but held back, how many results the message shows (atomically).
_RESULTS_WHILE_HELD = """(index) => {
  const message = document.querySelectorAll("[data-testid=assistant-message]")[index];
  const events = message && message.querySelector("[data-tool-name=find_events]");
  if (!events || events.dataset.state !== "held") return null;
  return { results: message.querySelectorAll("[data-result-seq]").length };
}"""


def _send(page: Page, prompt: str) -> None:
    page.fill("#prompt", prompt)
    page.press("#prompt", "Enter")


def _check_answer(page: Page, index: int, place: str) -> None:
    message = page.locator("[data-testid=assistant-message]").nth(index)
    held = page.wait_for_function(_RESULTS_WHILE_HELD, arg=index, timeout=TIMEOUT_MS)
    assert held.json_value() == {"results": 0}, "a finished call's result waits for the calls begun before it"
    page.wait_for_selector("[data-testid=run-status][data-status=complete]", timeout=TIMEOUT_MS)
    assert message.get_attribute("data-status") == "complete"

    assert "run them at the same time" in message.get_by_test_id("reasoning").inner_text()
    assert f"Here is a plan for {place}" in message.get_by_test_id("text").last.inner_text()

    calls = message.get_by_test_id("tool-call")
    order: list[Any] = calls.evaluate_all("els => els.map((e) => [e.dataset.toolName, e.dataset.resultSeq])")
    assert order == [[name, str(i + 1)] for i, name in enumerate(TOOL_NAMES)], "results arrived in call order"
    results = [calls.nth(i).get_by_test_id("tool-result").inner_text() for i in range(3)]
    assert "sunny spells" in results[0]
    assert f"{place} food market" in results[1]
    assert "morning train" in results[2]

    sources = message.get_by_test_id("source").all_inner_texts()
    assert len(sources) == 3
    assert f"{place} forecast" in sources[0]

    log: list[str] = page.evaluate("window.taskLog")
    assert log[-1] == " ".join(f"{task}=done" for task in ("read", *TOOL_NAMES, "answer"))
    assert any("find_events=done" in state and "get_weather=running" in state for state in log), (
        f"the task list showed the quick tool done while the slow one ran: {log}"
    )
    assert len(log) >= 6, f"the task list updated live: {log}"

    page.wait_for_selector("[data-testid=server-outcome][data-status=completed]", timeout=TIMEOUT_MS)


def _book(page: Page, index: int, fmt: str, approve: bool) -> None:
    """Ask to book in ``fmt``; the call waits with Approve / Deny; click one and see the answer go on.

    The page renders at its next animation frame: each check waits for what it looks at.
    """
    page.click(f"label.format:has(input[value={fmt}])")
    _send(page, "Book a train to Porto")
    message = page.locator("[data-testid=assistant-message]").nth(index)
    call = message.locator("[data-tool-name=book_train]")
    page.wait_for_selector("[data-testid=run-status][data-status=waiting]")
    message.locator(".notice", has_text="waits for your decision").wait_for()
    call.get_by_test_id("approve").wait_for()
    assert (message.get_attribute("data-status"), call.get_attribute("data-state")) == ("waiting", "approval")
    assert call.get_by_test_id("tool-result").is_hidden(), "the booking did not run"
    page.wait_for_selector("[data-testid=server-outcome][data-status=completed]")

    call.get_by_test_id("approve" if approve else "deny").click()
    page.wait_for_selector("[data-testid=run-status][data-status=complete]")
    page.wait_for_selector("[data-testid=server-outcome][data-status=completed]")
    answer = "Booked: the 08:15 train to Porto" if approve else "Understood, I did not book the train to Porto."
    message.get_by_test_id("text").filter(has_text=answer).wait_for()
    page.wait_for_selector("[data-testid=task][data-task-id=answer][data-status=done]")
    assert message.get_attribute("data-status") == "complete"
    assert call.get_by_test_id("approve").is_hidden()
    assert call.get_by_test_id("deny").is_hidden()
    assert page.locator("[data-testid=assistant-message]").count() == index + 1, "the answer continued the message"
    result = call.get_by_test_id("tool-result").inner_text()
    if approve:
        assert call.get_attribute("data-state") == "done"
        assert '"booked": true' in result
    else:
        assert call.get_attribute("data-state") == "denied"
        assert result == "The user denied this tool call. Reason: Not now"
    tasks = page.get_by_test_id("task").evaluate_all("els => els.map((e) => e.dataset.status)")
    assert tasks == ["done", "done" if approve else "denied", "done"]


def test_demo_page_in_chromium(tmp_path: Path) -> None:
    assert CHROMIUM.exists(), "Debian's chromium is needed: apt-get install chromium (scripts/test.sh does)"
    with (
        DemoProcess("--pace", "0.6") as demo,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1280})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(demo.url)
            page.wait_for_selector("body[data-ready=true]")
            assert page.locator("#formats input").evaluate_all("els => els.map((e) => e.value)") == list(FORMATS)

            page.click("#wire-details summary")  # show the raw frames too
            for index, (fmt, place) in enumerate(zip(FORMATS, PLACES, strict=True)):
                page.click(f"label.format:has(input[value={fmt}])")
                page.evaluate(_WATCH_TASKS)
                _send(page, f"Plan a weekend in {place}")
                _check_answer(page, index, place)
                assert page.get_by_test_id("wire").inner_text().strip(), "the wire panel shows the frames"
                if index == 0:
                    screenshot = (
                        README_SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "page.png"
                    )
                    page.screenshot(path=str(screenshot))
                    assert screenshot.stat().st_size > 0

            _send(page, "What about Porto?")
            stopped = page.locator("[data-testid=assistant-message]").nth(len(FORMATS))
            stopped.get_by_test_id("reasoning").wait_for()
            page.click("#stop")
            page.wait_for_selector("[data-testid=server-outcome][data-status=cancelled]")
            assert stopped.get_attribute("data-status") == "stopped"
            # The notice shows the server's report at the page's next render, after the outcome above.
            stopped.locator(".notice", has_text="the server cancelled the run").wait_for()
            assert "the server cancelled the run" in stopped.locator(".notice").inner_text()
            assert "Here is a plan" not in stopped.inner_text()
            run_id = page.evaluate("page.run.id")

            bookings = [(fmt, approve) for fmt in FORMATS for approve in (True, False)]
            for index, (fmt, approve) in enumerate(bookings, start=len(FORMATS) + 1):
                _book(page, index, fmt, approve)
            assert errors == []
        finally:
            browser.close()
        report = get_json(f"{demo.url}/api/runs/{run_id}")
    assert report["status"] == "cancelled"
    log = demo.log()
    assert f"run {run_id} cancelled" in log, log
    assert log.count("booked the 08:15 train to Porto") == len(FORMATS), "only approved bookings ran"
    assert "Traceback" not in log, log
