"""The Evaluate tab in a browser: from the end-of-run "Evaluate it" button to scores, diff and report."""

import pytest

from helpers import fast_overrides, real_page_errors, wait_for

pytestmark = pytest.mark.browser


def finished_run(server) -> str:
    """A short LoRA run trained through the HTTP API, as the Train tab's Start does."""
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    run_id = client.predict(fast_overrides(max_steps=30, batch_size=8, learning_rate=3e-3, max_samples=0,
                                           eval_every=30), api_name="/start_run")["run_id"]
    wait_for(lambda: client.predict(run_id, api_name="/run_status")["state"] in ("completed", "stopped", "failed"),
             timeout=1200, what="the run to end")
    assert client.predict(run_id, api_name="/run_status")["state"] == "completed"
    return run_id


def test_evaluate_from_the_end_of_run_button(server, page):
    run_id = finished_run(server)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("#to-eval", state="visible", timeout=60000)  # the run's end-of-run buttons
    page.click("#to-eval")
    page.wait_for_selector("#tab-evaluate", state="visible", timeout=15000)
    page.wait_for_function("(id) => (document.querySelector('#eval-runs')?.innerText ?? '').includes(id)",
                           arg=run_id, timeout=15000)
    page.click("#eval-settings .label-wrap")
    page.wait_for_selector("#eval-max-rows input", state="visible", timeout=30000)
    for _ in range(5):  # the section opening (and its first draw) can swallow a keystroke on a busy machine
        page.fill("#eval-max-rows input", "16")  # at most 16 examples: quick
        # leave the field, as a person would, so Gradio has taken the number before Start reads it
        page.press("#eval-max-rows input", "Tab")
        try:
            page.wait_for_function("() => (document.querySelector('#eval-max-rows input')?.value ?? '') === '16'",
                                   timeout=15000)
            break
        except Exception:
            continue
    assert page.input_value("#eval-max-rows input") == "16"
    page.click("#eval-start")
    page.wait_for_function("() => /Evaluating|Waiting|Done/.test((document.querySelector('#eval-status')?.innerText ?? ''))",
                           timeout=30000)
    page.wait_for_function("() => (document.querySelector('#eval-status')?.innerText ?? '').includes('Done')",
                           timeout=1200000)
    assert "16 examples" in page.inner_text("#eval-notes")
    summary = page.inner_text("#eval-summary")
    assert "ROUGE-L" in summary and "BLEU" in summary and "perplexity" in summary and run_id in summary
    page.wait_for_function("() => (document.querySelector('#eval-examples')?.innerText ?? '').includes('reference')",
                           timeout=15000)
    # the word-level diff of the first example: highlighted pieces, as text
    page.wait_for_function(
        "() => (document.querySelector('#eval-diff-tuned')?.innerText ?? '').split('\\n')"
        ".filter(l => l.trim() && !/answer vs reference|^[+-]$/.test(l.trim())).length > 0", timeout=15000)
    assert page.locator("#eval-diff-tuned script, #eval-examples img").count() == 0
    page.wait_for_selector("#eval-exports a, #eval-exports .file-name", timeout=15000)
    assert ".csv" in page.inner_text("#eval-exports") and ".jsonl" in page.inner_text("#eval-exports")
    page.click("#eval-report-btn")
    page.wait_for_function("() => (document.querySelector('#eval-report')?.innerText ?? '').includes('.png')",
                           timeout=120000)
    assert ".pdf" in page.inner_text("#eval-report")
    page.screenshot(path=str(server.home.parent / "evaluate-en.png"), full_page=True)

    page.locator("#language label", has_text="简体中文").click()
    page.wait_for_function("() => (document.querySelector('#eval-start')?.innerText ?? '').trim() === '开始评估'",
                           timeout=15000)
    page.wait_for_function("() => (document.querySelector('#eval-summary')?.innerText ?? '').includes('微调后')",
                           timeout=15000)
    page.screenshot(path=str(server.home.parent / "evaluate-zh.png"), full_page=True)
    page.locator("#language label", has_text="English").click()
    assert real_page_errors(errors) == []
