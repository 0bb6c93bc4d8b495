"""The Data tab: what the page computes (data_prepare, no browser) and a user's whole path in Chromium.

The browser tests upload a file, read the preview, the example as the model sees it (trained
tokens set apart from masked ones) and the quality report, clean and split it, save it to the
library and train on it from the Train tab; a bad file gets one sentence; screenshots of the tab
in English and Chinese are written to /tmp/data_tab_en.png and /tmp/data_tab_zh.png.
"""

import json

import pytest

from helpers import real_page_errors

from studio.errors import UserError
from studio.ui import data_prepare as dp


# --- what the handlers compute -------------------------------------------------------------------

def test_substitution_lists_are_read_line_by_line():
    text = "咳嗽 -> 胸痛 | 呼吸困难 | 咯血\n\ncough → chest pain|wheeze\n"
    assert dp.parse_substitutions(text) == {"咳嗽": ["胸痛", "呼吸困难", "咯血"],
                                            "cough": ["chest pain", "wheeze"]}
    with pytest.raises(UserError) as err:
        dp.parse_substitutions("ok -> fine\njust words")
    assert "Line 2" in str(err.value)


def test_placeholder_values_and_split_shares():
    assert dp.parse_placeholders("{{name}} = Alice\ncity=Paris") == {"name": "Alice", "city": "Paris"}
    with pytest.raises(UserError):
        dp.parse_placeholders("no equals sign")
    assert dp.split_options("0.7", "0.2", "0.1", "7", "")["ratios"] == [0.7, 0.2, 0.1]
    with pytest.raises(UserError, match="add up to 1"):
        dp.split_options("0.7", "0.7", "0.1", "7", "")
    with pytest.raises(UserError, match="must be a number"):
        dp.split_options("seventy", "0.2", "0.1", "7", "")


def test_user_text_in_markdown_is_shown_as_typed():
    assert dp.esc("<img src=x> **b** [l](javascript:x)") == "&lt;img src=x&gt; \\*\\*b\\*\\* \\[l](javascript:x)"


@pytest.fixture
def ws(tmp_path):
    from studio.workspace import Workspace

    return Workspace(tmp_path / "home")


def test_the_report_line_counts_kinds_of_problem_in_words_that_agree():
    one, two = ({"rows": 45, "findings": [{"count": 3}] * n} for n in (1, 2))
    assert dp.quality_text(one, "demo", 128, "en").startswith("45 rows checked, 1 kind of problem found.")
    assert dp.quality_text(two, "demo", 128, "en").startswith("45 rows checked, 2 kinds of problem found.")
    assert dp.quality_text(one, "demo", 128, "zh").startswith("检查了 45 行，发现 1 类问题。")


def test_a_demo_set_loads_pages_and_renders_an_example(ws):
    loaded = dp.redetect(dp.load_source(ws, "demo-en"))
    assert loaded.detection.format == "alpaca" and loaded.rows > 20
    frame, page, pages = dp.page_frame(loaded, 99)
    assert page == pages - 1 and len(frame) >= 1 and list(frame.columns)[0] == "#"
    tok = dp.tokenizer_for(ws, "demo")
    segments, note = dp.example_view(loaded, 1, tok, 256, "demo", "en")
    labels = {label for _, label in segments}
    assert labels == {"trained", "masked"} and "tokens" in note
    segments_zh, note_zh = dp.example_view(loaded, 1, tok, 256, "demo", "zh")
    assert {label for _, label in segments_zh} == {"训练", "不训练"} and "token" in note_zh
    assert "choose an example number" in dp.example_view(loaded, 10**6, tok, 256, "demo", "en")[1]


def test_unrecognised_columns_keep_the_rows_and_a_mapping_fixes_them(ws):
    ws.uploads.mkdir(parents=True)
    (ws.uploads / "qa.csv").write_text("question,answer\nhi,hello\nbye,ciao\n", encoding="utf-8")
    loaded = dp.load_source(ws, str(ws.uploads / "qa.csv"))
    with pytest.raises(UserError, match="question, answer") as err:
        dp.redetect(loaded, "auto", {})
    kept = err.value.loaded
    assert kept.detection is None and kept.rows == 2 and dp.roles_of(kept)[:2] == ["instruction", "output"]
    fixed = dp.redetect(kept, "auto", {"instruction": "question", "output": "answer"})
    assert fixed.detection.format == "alpaca" and fixed.user_mapping == {"instruction": "question", "output": "answer"}
    recipe = dp.make_recipe(fixed, {}, dp.split_options("0.5", "0.5", "0", "1", ""), {})
    assert recipe["mapping"] == {"instruction": "question", "output": "answer"} and recipe["augment"] is None


def test_a_recipe_from_the_page_prepares_and_saves_to_the_library(ws):
    loaded = dp.redetect(dp.load_source(ws, "demo-en"))
    recipe = dp.make_recipe(loaded, dp.clean_options(True, True, "exact", 0.8, "keep_first", "0", "0", ""),
                            dp.split_options("0.7", "0.2", "0.1", "42", ""),
                            dp.augment_options(["swap"], 1.0, "3", "prompt", ""))
    prepared = dp.run_prepare(ws, recipe, dp.tokenizer_for(ws, "demo"), 256)
    sizes = {k: len(v) for k, v in prepared.splits.items()}
    assert sizes["train"] > sizes["val"] > 0 and sizes["test"] > 0
    steps = dp.steps_frame(prepared, "en")
    assert {"load", "split"} <= set(steps["step"])
    side = dp.side_by_side(prepared, "en")
    assert len(side) > 0 and (side["original"] != side["augmented"]).any()
    from studio.library import Library

    entry = Library(ws.home).save(prepared, "demo swap")
    assert ("library:" + entry["id"]) in [value for _, value in dp.source_choices(ws)]


# --- in the browser ------------------------------------------------------------------------------

QUESTIONS = [("What is the capital of France?", "Paris."), ("What colour is the sky?", "Blue on a clear day."),
             ("How many legs does a spider have?", "Eight."), ("What is 2 + 2?", "4."),
             ("Name a primary colour.", "Red."), ("What do bees make?", "Honey."),
             ("Which planet is closest to the sun?", "Mercury."), ("What is ice made of?", "Frozen water."),
             ("How many days are in a week?", "Seven."), ("What is the opposite of hot?", "Cold.")]


def write_dataset(path):
    rows = [{"instruction": f"{q} (variant {i})", "input": "", "output": a}
            for i in range(4) for q, a in QUESTIONS]
    rows += rows[:3]  # exact duplicates the report finds and cleaning drops
    rows.append({"instruction": "Greet {{name}} politely.", "input": "", "output": "Hello, {{name}}!"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return len(rows)


# A component's own text, without the progress overlay Gradio draws inside it while it works.
TEXT_JS = """(css) => { const el = document.querySelector(css); if (!el) return '';
    const copy = el.cloneNode(true); copy.querySelectorAll('[data-testid=status-tracker]').forEach(e => e.remove());
    document.body.appendChild(copy); const text = copy.innerText; copy.remove(); return text; }"""


def text(page, css: str) -> str:
    return page.evaluate(TEXT_JS, css).strip()


def wait_text(page, css: str, needle: str, timeout: int = 60000):
    page.wait_for_function(f"([css, needle]) => ({TEXT_JS})(css).includes(needle)", arg=[css, needle],
                           timeout=timeout)


@pytest.mark.browser
def test_upload_check_clean_split_save_and_train_on_it(server, page, tmp_path):
    from gradio_client import Client

    from helpers import wait_for

    client = Client(server.url, verbose=False)
    client.predict(api_name="/stop_run")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    data = tmp_path / "quiz_en.jsonl"
    total = write_dataset(data)
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    page.click("#tab-data-button")
    page.wait_for_selector("#tab-data", state="visible")
    page.set_input_files("#data-upload input[type=file]", str(data))
    wait_text(page, "#data-table", "capital of France")
    wait_text(page, "#data-summary", f"{total} rows")
    assert "alpaca" in page.inner_text("#data-format")
    # the example as the model sees it: the answer is trained, the prompt around it masked
    wait_text(page, "#data-example-note", "tokens")
    example = page.inner_text("#data-example")
    assert "trained" in example and "masked" in example and "capital of France" in example
    # the quality report: duplicates and the placeholder, with example rows; a histogram drawn
    wait_text(page, "#data-findings", "3", timeout=120000)
    findings = text(page, "#data-findings")
    assert "repeat an earlier row" in findings and "41, 42, 43" in findings, findings  # rows counted from 1
    assert "placeholders" in findings and "{{name}}" in findings, findings
    page.wait_for_selector("#data-histogram .vega-embed, #data-histogram canvas, #data-histogram svg",
                           timeout=30000)
    page.screenshot(path="/tmp/data_tab_en.png", full_page=True)
    # clean (exact duplicates dropped, the placeholder filled), split 0.7/0.2/0.1, prepare
    page.fill("#data-clean-placeholders textarea", "name = Ada")
    page.locator("#data-augment-methods label", has_text="random swap").click()  # and augment
    page.click("#data-prepare")
    wait_text(page, "#data-prepare-status", "Prepared", timeout=120000)
    steps = text(page, "#data-steps")
    assert "split" in steps and "augment" in steps and str(total) in steps, steps
    assert "(variant" in text(page, "#data-augmented")  # original and augmented, side by side
    page.screenshot(path="/tmp/data_tab_en_prepared.png", full_page=True)
    # save to the library and train on it from the Train tab
    page.fill("#data-save-name textarea, #data-save-name input", "quiz en")
    page.click("#data-save")
    wait_text(page, "#data-save-status", "library:quiz-en-")
    page.click("#data-use")
    page.wait_for_selector("#tab-train", state="visible", timeout=15000)
    page.wait_for_function("() => (document.querySelector('#field-data-path input')?.value || '').includes('quiz en')",
                           timeout=15000)
    page.click("#group-training .label-wrap")
    page.fill("#field-train-max_steps textarea, #field-train-max_steps input", "2")
    page.click("#start-btn")
    runs = wait_for(lambda: [r for r in client.predict(api_name="/list_runs")
                             if r["state"] in ("completed", "failed", "crashed", "stopped")
                             and "quiz" in json.dumps(r)], timeout=600, what="the run on the library dataset", every=2)
    assert runs[0]["state"] == "completed", runs[0]
    wait_text(page, "#train-status", "Completed", timeout=60000)
    assert real_page_errors(errors) == []


@pytest.mark.browser
def test_a_bad_file_is_one_sentence_and_the_tab_keeps_working(server, page, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)  # gzip bytes named .json
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    page.click("#tab-data-button")
    page.wait_for_selector("#tab-data", state="visible")
    page.set_input_files("#data-upload input[type=file]", str(bad))
    wait_text(page, "#data-summary", "⚠")
    sentence = text(page, "#data-summary")
    assert "broken.json" in sentence and "Traceback" not in sentence and sentence.count("\n") == 0, sentence
    page.wait_for_timeout(1500)
    assert "⚠" in text(page, "#data-summary")  # it stays until the user acts
    page.locator("#language label", has_text="简体中文").click()
    wait_text(page, "#data-summary", "压缩")  # the same sentence, in the page's language
    wait_text(page, "#data-choice", "数据集")  # and the labels around it
    page.screenshot(path="/tmp/data_tab_zh_error.png", full_page=True)
    page.locator("#language label", has_text="English").click()
    page.click("#data-choice input")
    page.keyboard.press("Control+A")
    page.keyboard.type("demo-zh")
    page.keyboard.press("Enter")
    wait_text(page, "#data-summary", "rows")
    assert "⚠" not in text(page, "#data-summary")


def pick(page, css: str, option: str):
    """Choose an option of a Gradio dropdown by its text."""
    page.click(f"{css} input")
    page.locator("ul[role=listbox] li", has_text=option).first.click()
    page.wait_for_function("([css, option]) => (document.querySelector(css + ' input')?.value ?? '') === option",
                           arg=[css, option], timeout=10000)
    page.wait_for_selector("ul[role=listbox]", state="detached", timeout=10000)


@pytest.mark.browser
def test_other_column_names_are_mapped_by_the_user(server, page, tmp_path):
    data = tmp_path / "qa_columns.tsv"  # a TSV upload, with its own column names
    data.write_text("question\tanswer\nWhat is 1+1?\t2\nName a fruit.\tApple.\n", encoding="utf-8")
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    page.click("#tab-data-button")
    page.wait_for_selector("#tab-data", state="visible")
    page.set_input_files("#data-upload input[type=file]", str(data))
    wait_text(page, "#data-format", "question, answer")  # why it was not recognised, under Format
    assert "⚠" in text(page, "#data-format")
    wait_text(page, "#data-table", "Name a fruit.")  # the rows stay readable meanwhile
    assert "instruction" in text(page, "#data-role-0")
    pick(page, "#data-role-0", "question")
    pick(page, "#data-role-1", "answer")
    page.click("#data-apply")
    wait_text(page, "#data-format", "question → instruction")
    assert "⚠" not in text(page, "#data-format") and text(page, "#data-format").startswith("alpaca")
    wait_text(page, "#data-example", "What is 1+1?")  # example 1, as the model sees it


@pytest.mark.browser
def test_the_tab_in_chinese(server, page):
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    page.locator("#language label", has_text="简体中文").click()
    page.click("#tab-data-button")
    page.wait_for_selector("#tab-data", state="visible")
    wait_text(page, "#data-summary", "行")
    wait_text(page, "#data-example-note", "token")
    assert "不训练" in page.inner_text("#data-example")
    page.click("#data-quality-run")
    wait_text(page, "#data-quality", "语言", timeout=120000)
    page.screenshot(path="/tmp/data_tab_zh.png", full_page=True)
    page.locator("#language label", has_text="English").click()


@pytest.fixture
def held_studio(tmp_path, monkeypatch):
    """A studio served from this process whose opening demo load and quality report wait until the
    test lets them go: what a busy server does to a user who acts before a step has finished."""
    import threading

    import studio.quality
    from studio.ui import app, data_session
    from helpers import free_port, wait_for

    gates = {"demo-en": threading.Event(), "report": threading.Event()}
    real_load, real_report = dp.load_source, studio.quality.quality_report

    def held_load(ws, source, *args):
        if source == "demo-en":
            gates["demo-en"].wait(120)
        return real_load(ws, source, *args)

    def held_report(*args, **kwargs):
        gates["report"].wait(120)
        return real_report(*args, **kwargs)

    dropped = []
    real_commit = data_session.DataSession.commit

    def commit(self, snap, new):
        now = real_commit(self, snap, new)
        if now is None:
            dropped.append(new["loaded"].source if new["loaded"] else None)
        return now

    monkeypatch.setattr(dp, "load_source", held_load)
    monkeypatch.setattr(studio.quality, "quality_report", held_report)
    monkeypatch.setattr(data_session.DataSession, "commit", commit)
    built = {}
    real_build = app.build_app
    monkeypatch.setattr(app, "build_app", lambda ws: built.setdefault("demo", real_build(ws)))
    port = free_port()
    app.launch(tmp_path / "home", port=port, prevent_thread_lock=True)
    try:
        yield f"http://127.0.0.1:{port}/", gates, dropped, wait_for
    finally:
        for gate in gates.values():
            gate.set()
        built["demo"].close()


@pytest.mark.browser
def test_a_slow_step_does_not_undo_what_the_user_did_meanwhile(held_studio, page, tmp_path):
    url, gates, dropped, wait_for = held_studio
    data = tmp_path / "quiz_en.jsonl"
    total = write_dataset(data)  # 44 rows: three pages
    page.goto(url)
    page.wait_for_selector("#start-btn")
    page.click("#tab-data-button")
    page.wait_for_selector("#tab-data", state="visible")
    page.set_input_files("#data-upload input[type=file]", str(data))  # the demo set is still loading
    wait_text(page, "#data-summary", f"{total} rows")
    page.click("#data-next")  # while the quality report is computed
    wait_text(page, "#data-page", "Page 2 of 3")
    assert page.input_value("#data-role-1 input") == "output"
    pick(page, "#data-role-1", "input")  # another column for "output", not applied yet
    gates["demo-en"].set()  # the load sent when the page opened ends last: dropped, not shown
    wait_for(lambda: dropped == ["demo-en"], timeout=120)
    gates["report"].set()
    wait_text(page, "#data-findings", "repeat an earlier row", timeout=120000)
    assert f"{total} rows" in text(page, "#data-summary") and "quiz_en" in page.input_value("#data-choice input")
    assert text(page, "#data-page") == "Page 2 of 3"
    assert page.input_value("#data-role-1 input") == "input"
    page.click("#data-next")  # the page turned to is the one the state holds
    wait_text(page, "#data-page", "Page 3 of 3")
