"""The Quick sweep accordion in a real browser: a bad value, then a tiny sweep and "Use the best"."""

import pytest

from helpers import real_page_errors

pytestmark = pytest.mark.browser


def fill(page, key: str, value: str) -> None:
    page.fill(f"#field-{key.replace('.', '-')} textarea, #field-{key.replace('.', '-')} input", value)


def test_sweep_panel_bad_value_then_two_trials_and_use_the_best(server, page):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    for title in ("#group-data", "#group-training", "#sweep-panel"):  # open the closed sections
        page.click(f"{title} button >> nth=0")
    fill(page, "data.max_samples", "40")
    fill(page, "train.max_steps", "4")
    fill(page, "train.batch_size", "4")
    page.fill("#sweep-values textarea, #sweep-values input", "1e-4, <b>oops</b>")
    page.click("#sweep-start")
    page.wait_for_function("() => (document.querySelector('#sweep-progress')?.innerText ?? '').includes('could not start')",
                           timeout=30000)
    assert "needs a number" in page.inner_text("#sweep-progress")
    assert page.locator("#sweep-progress b").count() == 0  # user text is never markup

    page.fill("#sweep-values textarea, #sweep-values input", "1e-6, 3e-3")
    page.click("#sweep-start")
    page.wait_for_function("() => (document.querySelector('#sweep-best')?.innerText ?? '').includes('Best')",
                           timeout=300000)
    assert "learning_rate=0.003" in page.inner_text("#sweep-best")
    assert page.inner_text("#sweep-table").count("completed") == 2
    page.wait_for_function(  # one eval-loss line per trial, the later trial's included
        "() => document.querySelectorAll('#sweep-plot .mark-line path').length >= 2", timeout=30000)
    assert "learning_rate=0.003" in page.inner_text("#sweep-plot")
    page.screenshot(path=str(server.home.parent / "sweep-en.png"), full_page=True)
    page.click("#sweep-use-best")
    page.wait_for_function("() => (document.querySelector('#field-train-learning_rate textarea, "
                           "#field-train-learning_rate input')?.value ?? '') === '0.003'", timeout=15000)
    assert real_page_errors(errors) == []
