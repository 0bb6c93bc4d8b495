"""Headless Chromium drives the studio as a first-time user would."""

import re
import time

import pytest

pytestmark = pytest.mark.browser

LOSS_LINES = "#loss-plot .mark-line path"


def status(page) -> str:
    return page.inner_text("#train-status")


LINES_JS = f"() => [...document.querySelectorAll('{LOSS_LINES}')].map(p => p.getAttribute('d')).join('|')"


def loss_path(page) -> str:
    """All loss lines' SVG paths: they change whenever the plot gains a point."""
    return page.evaluate(LINES_JS)


def wait_for_new_points(page, before: str, timeout: int = 10000):
    page.wait_for_function(f"(before) => ({LINES_JS})() !== before", arg=before, timeout=timeout)


def test_first_run_start_watch_reload_second_tab_stop(server, page, browser):
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    assert page.input_value("#field-model-path input") == "demo"
    assert page.input_value("#field-data-path input") == "demo-en"
    page.fill("#field-train-epochs textarea, #field-train-epochs input", "6")  # long enough to watch
    clicked = time.time()
    page.click("#start-btn")
    page.wait_for_function(  # within a second: work has visibly begun and Start is disabled
        "() => /Starting|Loading|Preparing|Training/.test(document.querySelector('#train-status').innerText)"
        " && document.querySelector('#start-btn').disabled", timeout=2000)
    assert time.time() - clicked < 1.5
    page.wait_for_function(  # then the real phases: loading model -> preparing data -> training
        "() => /Loading|Preparing|Training/.test(document.querySelector('#train-status').innerText)",
        timeout=30000)

    page.wait_for_selector(LOSS_LINES, timeout=60000)
    first = loss_path(page)
    wait_for_new_points(page, first)  # the plot gains points while training runs
    assert re.search(r"step \d+/\d+", status(page)) and "ETA" in status(page)
    page.wait_for_function(  # eval loss is drawn as its own line once the first eval ran
        f"() => [...document.querySelectorAll('{LOSS_LINES}')].filter(p => (p.getAttribute('d') || '').length > 5).length >= 2",
        timeout=30000)

    page.reload()
    page.wait_for_selector(LOSS_LINES, timeout=15000)
    assert "Training" in status(page)
    other = browser.new_page()
    other.goto(server.url)
    other.wait_for_selector(LOSS_LINES, timeout=15000)
    before = loss_path(other)
    wait_for_new_points(other, before)
    other.close()

    page.click("#stop-btn")
    page.wait_for_function("() => document.querySelector('#train-status').innerText.includes('Stopped')",
                           timeout=60000)
    assert "Saved to" in page.inner_text("#train-result")
    page.get_by_role("button", name="Chat with it").click()
    page.wait_for_function("() => (document.querySelector('#chat-model input')?.value || '').includes('lora')", timeout=5000)
    page.screenshot(path=str(server.home.parent / "after-stop.png"), full_page=True)


def test_bad_value_is_explained_next_to_the_field(server, page):
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    page.fill("#field-train-learning_rate textarea, #field-train-learning_rate input", "-0.001")
    page.click("#start-btn")
    page.wait_for_function("() => document.querySelector('#train-status').innerText.includes('Could not start')",
                           timeout=5000)
    field = page.inner_text("#field-train-learning_rate")
    assert "Learning rate must be at least 0" in field
    assert not page.locator("#start-btn").is_disabled()


def test_runs_tab_lists_runs(server, page):
    page.goto(server.url)
    page.get_by_role("tab", name="Runs").click()
    page.wait_for_selector("#runs-table")
    page.wait_for_function("() => document.querySelector('#runs-table').innerText.includes('stopped')",
                           timeout=10000)
