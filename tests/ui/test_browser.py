"""Headless Chromium drives the studio as a first-time user would."""

import re
import time

import pytest

pytestmark = pytest.mark.browser

LOSS_LINES = "#loss-plot .mark-line path"


def status(page) -> str:
    return page.inner_text("#train-status")


def loss_path(page) -> str:
    paths = page.locator(LOSS_LINES)
    return paths.first.get_attribute("d") if paths.count() else ""


def test_first_run_start_watch_reload_second_tab_stop(server, page, browser):
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    assert page.input_value("#field-model-path input") == "demo"
    assert page.input_value("#field-data-path input") == "demo-en"
    page.fill("#field-train-epochs textarea, #field-train-epochs input", "50")  # long enough to watch
    clicked = time.time()
    page.click("#start-btn")
    page.wait_for_function(
        "() => /Loading|Preparing|Training/.test(document.querySelector('#train-status').innerText)",
        timeout=2000)
    assert time.time() - clicked < 2
    assert page.locator("#start-btn").is_disabled()

    page.wait_for_selector(LOSS_LINES, timeout=60000)
    first = loss_path(page)
    page.wait_for_function(f"(d) => document.querySelector('{LOSS_LINES}').getAttribute('d') !== d",
                           arg=first, timeout=10000)  # the plot gains points while training runs
    assert re.search(r"step \d+/\d+", status(page)) and "ETA" in status(page)

    page.reload()
    page.wait_for_selector(LOSS_LINES, timeout=15000)
    assert "Training" in status(page)
    other = browser.new_page()
    other.goto(server.url)
    other.wait_for_selector(LOSS_LINES, timeout=15000)
    before = loss_path(other)
    other.wait_for_function(f"(d) => document.querySelector('{LOSS_LINES}').getAttribute('d') !== d",
                            arg=before, timeout=10000)
    other.close()

    page.click("#stop-btn")
    page.wait_for_function("() => document.querySelector('#train-status').innerText.includes('Stopped')",
                           timeout=60000)
    assert "Saved to" in page.inner_text("#train-result")
    assert page.locator("text=Chat with it").is_visible()
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
