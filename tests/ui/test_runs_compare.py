"""The Runs tab compares two finished runs, exports one as a recipe, renames and deletes one, in
the browser. The runs are written straight into the server's home (the run folder is the source
of truth), so no training is needed."""

import time

import pytest

from helpers import real_page_errors
from test_browser import open_tab, switch_language

pytestmark = pytest.mark.browser


def finished_run(home, losses, evals, **settings):
    from studio.config import StudioConfig, apply_overrides
    from studio.runs import RunStore

    run = RunStore(home).create(apply_overrides(StudioConfig(), [f"{k}={v}" for k, v in settings.items()]))
    for step, loss in enumerate(losses, 1):
        run.append_metric({"t": time.time(), "step": step, "loss": loss})
    for i, value in enumerate(evals, 1):
        run.append_metric({"t": time.time(), "step": 2 * i, "eval_loss": value})
    run.update_status(state="completed", phase="completed", final_loss=losses[-1], ended_at=time.time())
    return run


def text_of(page, css: str) -> str:
    """A field's value (textbox, dropdown), else the element's text (tables, buttons)."""
    return page.evaluate(TEXT_JS, css)


TEXT_JS = ("(css) => { const el = document.querySelector(css); if (!el) return '';"
           " const f = el.matches('.block:has(table)') ? null : el.querySelector('textarea, input');"
           " return (f ? f.value : el.innerText) || ''; }")


def wait_text(page, css: str, fragment: str, timeout: int = 30000):
    page.wait_for_function(f"([css, fragment]) => ({TEXT_JS})(css).includes(fragment)", arg=[css, fragment],
                           timeout=timeout)


def choose(page, run_id: str):
    page.locator("#compare-runs input").click()
    page.locator("ul[role=listbox] li", has_text=run_id).first.click()


def test_compare_two_runs_export_rename_delete(server, page):
    from studio.config import load_recipe

    a = finished_run(server.home, [2.0, 1.5, 1.2, 1.0], [1.6, 1.3], learning_rate=2e-4)
    b = finished_run(server.home, [2.1, 1.3, 0.9, 0.7], [1.4, 1.1], learning_rate=1e-3, lora_r=8)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    open_tab(page, "runs")
    page.locator("#compare-runs input").wait_for()
    choose(page, a.id)
    choose(page, b.id)
    page.keyboard.press("Escape")

    # Four lines (train and eval loss of each run) over each other; the settings that differ.
    page.wait_for_function("() => document.querySelectorAll('#compare-plot .mark-line path').length >= 4",
                           timeout=30000)
    wait_text(page, "#compare-config", "train.learning_rate")
    config = page.inner_text("#compare-config")
    assert "method.lora_r" in config and "0.001" in config and "0.0002" in config
    wait_text(page, "#compare-results", "final train loss")
    results = page.inner_text("#compare-results")
    assert "0.7" in results and "1.1" in results

    # Before anything was asked, the answer boxes and the export area take no room.
    for empty in ("#resume-note", "#compare-manage-note", "#compare-recipe", "#compare-command"):
        assert not page.locator(empty).is_visible(), empty
    # Export the first chosen run (the manage section follows the comparison).
    wait_text(page, "#compare-target", a.id)
    page.click("#compare-export")
    wait_text(page, "#compare-command", "studio train")
    for shown in ("#compare-manage-note", "#compare-recipe", "#compare-command"):
        assert page.locator(shown).is_visible(), shown
    saved = server.home / "exports" / "recipes" / f"{a.id}.yaml"
    assert text_of(page, "#compare-command") == f"studio train {saved} --home {server.home}"
    assert load_recipe(saved) == a.config()  # the exported YAML is a recipe `studio train` reads
    assert saved.read_text().startswith(f"# studio train {saved}")
    page.locator("#compare-recipe-file a").first.wait_for(timeout=30000)  # the download

    # Rename: a label in the table; the id stays.
    page.fill("#compare-label textarea, #compare-label input", "baseline <b>lr</b>")
    page.click("#compare-rename")
    wait_text(page, "#compare-manage-note", "baseline <b>lr</b>")
    wait_text(page, "#runs-table", "baseline <b>lr</b>")  # shown as text, not markup
    assert (a.path / "label.txt").read_text().strip() == "baseline <b>lr</b>"

    # Delete asks first, then removes the folder; the comparison and lists let go of the run.
    page.click("#compare-delete")
    wait_text(page, "#compare-delete", "Confirm delete")
    assert a.path.is_dir()
    page.click("#compare-delete")
    wait_text(page, "#compare-manage-note", f"Deleted run {a.id}")
    assert not a.path.exists() and b.path.is_dir()
    page.wait_for_function("(id) => !(document.querySelector('#runs-table')?.innerText ?? '').includes(id)",
                           arg=a.id, timeout=30000)
    wait_text(page, "#compare-note", "at least two")
    assert page.inner_text("#compare-delete").strip() == "Delete run"

    switch_language(page, "简体中文")
    wait_text(page, "#compare-manage-note", f"已删除运行 {a.id}")
    wait_text(page, "#compare-note", "至少选择两个")
    page.screenshot(path=str(server.home.parent / "runs-compare-zh.png"), full_page=True)
    switch_language(page, "English")
    assert not real_page_errors(errors), errors


def test_an_empty_home_says_there_are_no_runs_until_one_appears(tmp_path, page):
    """A fresh studio's Runs table is only headers: a line says so, in the page's language, and
    goes once a run appears (here written into the home, picked up by the tab's timer)."""
    from conftest import Server

    server = Server(tmp_path / "home")
    try:
        page.goto(server.url)
        open_tab(page, "runs")
        page.locator("#runs-empty").wait_for(state="visible", timeout=30000)
        assert "No runs yet" in page.inner_text("#runs-empty")
        switch_language(page, "简体中文")
        wait_text(page, "#runs-empty", "还没有运行记录")
        switch_language(page, "English")
        wait_text(page, "#runs-empty", "No runs yet")

        run = finished_run(server.home, [2.0, 1.5], [1.6])
        wait_text(page, "#runs-table", run.id)
        page.locator("#runs-empty").wait_for(state="hidden", timeout=30000)
    finally:
        server.stop()
