"""Headless Chromium drives the studio as a first-time user would."""

import re
import time

import pytest

from helpers import fast_overrides, real_page_errors, wait_for

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


def test_first_run_start_watch_reload_second_tab_stop(idle, page, browser):
    server = idle
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    assert page.input_value("#field-model-path input") == "demo"
    assert page.input_value("#field-data-path input") == "demo-en"
    page.fill("#field-train-epochs textarea, #field-train-epochs input", "6")  # long enough to watch
    page.click("#start-btn")
    page.wait_for_function(  # work has visibly begun and Start is disabled (no wall-clock limit:
        # the acknowledgement is a queue-free event, so it does not wait for the model check)
        "() => /Starting|Loading|Preparing|Training/.test((document.querySelector('#train-status')?.innerText ?? ''))"
        " && document.querySelector('#start-btn').disabled", timeout=15000)
    page.wait_for_function(  # then the real phases: loading model -> preparing data -> training
        "() => /Loading|Preparing|Training/.test((document.querySelector('#train-status')?.innerText ?? ''))",
        timeout=30000)

    page.wait_for_selector(LOSS_LINES, timeout=60000)
    first = loss_path(page)
    wait_for_new_points(page, first)  # the plot gains points while training runs
    assert re.search(r"step \d+/\d+", status(page)) and "ETA" in status(page)
    page.wait_for_function(  # eval loss is drawn as its own line once the first eval ran
        f"() => [...document.querySelectorAll('{LOSS_LINES}')].filter(p => (p.getAttribute('d') || '').length > 5).length >= 2",
        timeout=120000)

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
    page.wait_for_function("() => (document.querySelector('#train-status')?.innerText ?? '').includes('Stopped')",
                           timeout=60000)
    assert "Saved to" in page.inner_text("#train-result")
    page.get_by_role("button", name="Chat with it").click()
    page.wait_for_function("() => (document.querySelector('#chat-model input')?.value || '').includes('lora')", timeout=5000)
    page.screenshot(path=str(server.home.parent / "after-stop.png"), full_page=True)


def test_bad_value_is_explained_next_to_the_field(idle, page):
    page.goto(idle.url)
    page.wait_for_selector("#start-btn")
    page.fill("#field-train-learning_rate textarea, #field-train-learning_rate input", "-0.001")
    page.click("#start-btn")
    page.wait_for_function("() => (document.querySelector('#train-status')?.innerText ?? '').includes('Could not start')",
                           timeout=30000)
    field = page.inner_text("#field-train-learning_rate")
    assert "Learning rate must be at least 0" in field
    assert not page.locator("#start-btn").is_disabled()


def test_runs_tab_lists_runs(idle, page):
    from gradio_client import Client

    client = Client(idle.url, verbose=False)
    run_id = client.predict(fast_overrides(max_steps=2), api_name="/start_run")["run_id"]
    wait_for(lambda: client.predict(run_id, api_name="/run_status")["state"] in ("completed", "stopped", "failed"),
             timeout=300, what="the run to end")
    page.goto(idle.url)
    page.get_by_role("tab", name="Runs").click()
    page.wait_for_selector("#runs-table")
    page.wait_for_function("(id) => (document.querySelector('#runs-table')?.innerText ?? '').includes(id)",
                           arg=run_id, timeout=30000)
    text = page.inner_text("#runs-table")
    row = text[text.index(run_id):][:200]  # the newest run comes first: its cells follow its id
    assert "Completed" in row and "2/2" in row, row


# --- the page keeps attention where the problem is, in two languages --------------------------

TABS = ["data", "train", "evaluate", "chat", "runs"]


@pytest.fixture
def idle(server):
    """No run in progress (a run another test left going is stopped), so Start is clickable."""
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    client.predict(api_name="/stop_run")
    wait_for(lambda: not any(r["state"] in ("queued", "running", "stopping")
                             for r in client.predict(api_name="/list_runs")),
             what="every run to stop")
    return server


def dropdown_options(page, css: str, expected: str, timeout: float = 30) -> list[str]:
    """The options of a dropdown once one ends with `expected` (the page's load may still run)."""
    deadline = time.monotonic() + timeout
    while True:
        page.click(f"{css} input")
        options = page.locator("ul[role=listbox] li").all_inner_texts()
        page.keyboard.press("Escape")
        page.locator(f"{css} input").blur()  # a focused dropdown does not open on the next click
        if any(o.strip().endswith(expected) for o in options) or time.monotonic() > deadline:
            return options
        page.wait_for_timeout(500)


def open_tab(page, name: str):
    """Select a tab and wait until its content is shown (gradio mounts it on selection)."""
    page.click(f"#tab-{name}-button")
    page.wait_for_selector(f"#tab-{name}", state="visible")


def switch_language(page, name: str):
    page.locator("#language label", has_text=name).click()


def wait_for_texts(page, expected: dict, timeout: int = 30000):
    """Wait until each selector's text is the expected one (tab titles update one after another)."""
    page.wait_for_function(
        "(expected) => Object.entries(expected).every(([css, text]) => "
        "document.querySelector(css)?.innerText.trim() === text)", arg=expected, timeout=timeout)


def field_input(key: str) -> str:
    css = "#field-" + key.replace(".", "-")
    return f"{css} textarea, {css} input"


def test_switching_to_chinese_rewords_the_page_and_survives_a_reload(server, page):
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    assert page.inner_text("#start-btn") == "Start training"
    switch_language(page, "简体中文")
    wait_for_texts(page, {"#start-btn": "开始训练", "#tab-train-button": "训练", "#tab-runs-button": "运行记录"})
    assert "训练轮数" in page.inner_text("#field-train-epochs")
    assert "遍历训练数据的次数" in page.inner_text("#field-train-epochs")  # the help text too
    page_shows(page, "通过 API 使用")  # Gradio's own words follow the page's switch (the browser is English)
    page.reload()
    wait_for_texts(page, {"#start-btn": "开始训练", "#tab-data-button": "数据", "#tab-chat-button": "对话"})
    assert "训练轮数" in page.inner_text("#field-train-epochs")
    open_tab(page, "data")  # mounted now, after the remembered language was applied
    page_shows(page, "将文件拖放到此处")  # Gradio's upload box
    switch_language(page, "English")
    wait_for_texts(page, {"#tab-data-button": "Data"})
    page_shows(page, "Use via API")
    open_tab(page, "train")
    wait_for_texts(page, {"#start-btn": "Start training"})
    assert "Epochs" in page.inner_text("#field-train-epochs")


def page_shows(page, text: str, timeout: int = 30000):
    page.wait_for_function("(text) => document.body.innerText.includes(text)", arg=text, timeout=timeout)


def test_help_text_is_readable(server, page):
    page.goto(server.url)
    page.wait_for_selector("#field-train-epochs .info-text")
    # WCAG contrast of the help line and the tab intro against the page: at least 4.5:1
    ratios = page.evaluate("""() => {
        const lum = (css) => { const [r, g, b] = css.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number)
              .map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
        const ratio = (el) => { const fg = lum(getComputedStyle(el).color), bg = lum('rgb(255,255,255)');
            return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05); };
        return [ratio(document.querySelector('#field-train-epochs .info-text')),
                ratio(document.querySelector('.tab-intro'))];
    }""")
    assert min(ratios) >= 4.5, ratios


def test_all_bad_fields_flagged_section_opened_and_the_error_stays(idle, page):
    page.goto(idle.url)
    page.wait_for_selector("#start-btn")
    page.fill(field_input("train.learning_rate"), "-0.001")
    page.click("#group-method .label-wrap")
    # Typed as a user types (keys, then Tab away), and the section is closed only once the server
    # has the new rank (the estimate then names it). In this session's CI runs a filled-in value
    # sometimes never reached the server (the Start that followed sent the old rank); a second try
    # types it again rather than failing on the browser's lost event.
    rank = page.locator(field_input("method.lora_r"))
    for attempt in range(2):
        rank.fill("")
        rank.press_sequentially("0")
        rank.press("Tab")
        try:
            page.wait_for_function(
                "() => (document.querySelector('#train-estimate')?.innerText ?? '').includes('LoRA rank')",
                timeout=30000)
            break
        except Exception:
            if attempt:
                raise
    page.click("#group-method .label-wrap")  # closed again: the bad value is out of sight
    page.wait_for_selector("#field-method-lora_r", state="hidden")
    page.click("#start-btn")
    page.wait_for_function("() => (document.querySelector('#train-status')?.innerText ?? '').includes('Could not start')",
                           timeout=30000)
    assert "⚠ Learning rate must be at least 0" in page.inner_text("#field-train-learning_rate")
    # Both problems are on the card first (a failure below is then the section, not the value sent).
    assert "LoRA rank" in page.inner_text("#train-status"), page.inner_text("#train-status")
    page.wait_for_selector("#field-method-lora_r", state="visible")  # its section was opened
    assert "⚠ LoRA rank must be at least 1" in page.inner_text("#field-method-lora_r")
    page.wait_for_timeout(4000)  # several timer ticks later the error is still what the card says
    card = page.inner_text("#train-status")
    assert "Could not start" in card and "LoRA rank" in card and "Learning rate" in card
    page.fill(field_input("train.learning_rate"), "0.003")  # fixing one field keeps the other flagged
    page.wait_for_function("() => !(document.querySelector('#field-train-learning_rate')?.innerText ?? '').includes('⚠')",
                           timeout=10000)
    assert "⚠" in page.inner_text("#field-method-lora_r")
    assert "Could not start" in page.inner_text("#train-status")
    page.fill(field_input("method.lora_r"), "16")  # the last one fixed: the notice goes
    page.wait_for_function("() => !(document.querySelector('#train-status')?.innerText ?? '').includes('Could not start')",
                           timeout=10000)
    assert not page.locator("#start-btn").is_disabled()


def test_unreachable_hub_model_is_one_sentence_next_to_the_model(idle, page):
    page.goto(idle.url)
    page.wait_for_selector("#start-btn")
    page.fill("#field-model-path input", "nobody-here/no-such-model")
    page.keyboard.press("Enter")
    page.evaluate("""() => {  // count any moment a form field shows a progress overlay
        window.formSpinners = 0;
        new MutationObserver(() => {
            const trackers = document.querySelectorAll('[id^="field-"] [data-testid="status-tracker"]');
            trackers.forEach(t => { if (!t.classList.contains('hide')) (window.formSpinnerLog = window.formSpinnerLog || []).push(t.closest('[id^=field-]').id + ' ' + t.className); });
            if ([...trackers].some(t => !t.classList.contains('hide'))) window.formSpinners++;
        }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['class']});
    }""")
    page.click("#start-btn")
    page.wait_for_function("() => (document.querySelector('#train-status')?.innerText ?? '').includes('Could not start')",
                           timeout=60000)
    assert "⚠" in page.inner_text("#field-model-path")
    assert page.locator("#train-status .status-title").count() == 0  # no run card, old or new
    assert "Traceback" not in page.inner_text("#train-status")
    assert page.evaluate("() => window.formSpinners") == 0, page.evaluate("() => window.formSpinnerLog")


def test_no_javascript_errors_when_switching_tabs(idle, page):
    """Switching tabs right after Start, while the form's outputs are still pending, used to
    raise `Cannot read properties of null (reading 'offsetWidth')`: the progress overlay of the
    plots (outputs of Start) was measured after their tab was unmounted. Start now shows its
    progress in the status card only."""
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.goto(idle.url)
    page.wait_for_selector("#start-btn")
    page.click("#group-training .label-wrap")
    page.fill(field_input("train.max_steps"), "3")
    page.click("#start-btn")  # may be refused if another test's run is going: switching still counts
    for language in ("English", "简体中文"):
        switch_language(page, language)
        for _ in range(2):
            for name in TABS + ["train"]:
                open_tab(page, name)
                page.wait_for_timeout(700)  # let timers tick and plots draw while tabs change
    if page.locator("#stop-btn").is_enabled():
        page.click("#stop-btn")
    assert real_page_errors(errors) == []


def test_uploaded_dataset_is_text_and_stays_in_both_lists_after_reload(server, page, tmp_path):
    data = tmp_path / "html_columns.csv"
    data.write_text('instruction,output,<img src="http://127.0.0.1:9/pixel.png">\n'
                    'Say hi,Hi there,<b>bold</b> <img src=x>\n', encoding="utf-8")
    requested = []
    page.on("request", lambda request: "pixel.png" in request.url and requested.append(request.url))
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    open_tab(page, "data")
    page.set_input_files("#data-upload input[type=file]", str(data))
    page.wait_for_function("() => (document.querySelector('#data-table')?.innerText ?? '').includes('Say hi')",
                           timeout=30000)
    table = page.inner_text("#data-table")
    assert '<img src="http://127.0.0.1:9/pixel.png">' in table and "<b>bold</b>" in table
    assert page.locator("#data-table img, #data-summary img").count() == 0 and not requested
    page.reload()
    page.wait_for_selector("#start-btn")
    for css in ("#field-data-path", None):
        if css is None:
            open_tab(page, "data")
            css = "#data-choice"
        options = dropdown_options(page, css, "html_columns.csv")
        assert any(o.strip().endswith("html_columns.csv") and "/" not in o for o in options), options
