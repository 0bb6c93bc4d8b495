"""A run chosen in the Chat, Evaluate and Arena lists is deleted (the Runs tab's Delete:
studio.compare.delete_run, on the server's home): each list's next redraw unchooses it, keeps the
other chosen run, and later redraws (which send the lists' values) go on without Gradio's
"Value … is not in the list of choices" error."""

import time

import pytest

from helpers import real_page_errors, wait_for
from test_browser import dropdown_options, open_tab

pytestmark = pytest.mark.browser

STALE = "not in the list of choices"


def finished_run(home):
    """A completed run with an adapter folder (what the Chat, Evaluate and Arena lists offer)."""
    from studio.config import StudioConfig
    from studio.runs import RunStore

    run = RunStore(home).create(StudioConfig())
    (run.path / "adapter").mkdir()
    run.append_metric({"t": time.time(), "step": 1, "loss": 1.0})
    run.update_status(state="completed", phase="completed", final_loss=1.0, ended_at=time.time())
    return run


def wait_option(page, css: str, run_id: str):
    """Open the list until it offers `run_id` (its redraws come from timers and loads)."""
    wait_for(lambda: any(run_id in option for option in dropdown_options(page, css, "", timeout=0)),
             what=f"{run_id} in {css}", every=1.0)


def pick(page, css: str, run_id: str):
    page.locator(f"{css} input").click()
    page.locator("ul[role=listbox] li", has_text=run_id).first.click()
    page.keyboard.press("Escape")
    page.locator(f"{css} input").blur()


def shown(page, css: str) -> str:
    """A dropdown's chosen value(s) as the page shows them: the input's text and the tokens."""
    return page.evaluate("(css) => { const el = document.querySelector(css); if (!el) return '';"
                         " const i = el.querySelector('input'); return (i ? i.value : '') + ' | ' +"
                         " [...el.querySelectorAll('.token')].map(t => t.innerText).join(' '); }", css)


def wait_shown(page, css: str, absent: str, present: str | None = None, timeout: int = 60000):
    page.wait_for_function(
        "([css, absent, present]) => { const el = document.querySelector(css); if (!el) return false;"
        " const i = el.querySelector('input');"
        " const text = (i ? i.value : '') + ' ' + [...el.querySelectorAll('.token')].map(t => t.innerText).join(' ');"
        " return !text.includes(absent) && (!present || text.includes(present)); }",
        arg=[css, absent, present], timeout=timeout)


def test_a_deleted_run_leaves_every_picker_without_an_error(server, page):
    from studio.compare import delete_run
    from studio.i18n import t
    from studio.runs import RunStore

    gone, kept = finished_run(server.home), finished_run(server.home)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("#start-btn")

    open_tab(page, "chat")
    wait_option(page, "#chat-model", gone.id)
    pick(page, "#chat-model", gone.id)
    open_tab(page, "evaluate")
    wait_option(page, "#eval-runs", kept.id)
    pick(page, "#eval-runs", gone.id)
    pick(page, "#eval-runs", kept.id)
    open_tab(page, "arena")
    wait_option(page, "#arena-a", kept.id)
    pick(page, "#arena-a", gone.id)
    pick(page, "#arena-b", kept.id)
    assert gone.id in shown(page, "#chat-model") and gone.id in shown(page, "#arena-a")
    assert gone.id in shown(page, "#eval-runs") and kept.id in shown(page, "#eval-runs")

    delete_run(RunStore(server.home), gone.id)
    # Each list is redrawn when its tab is shown (the arena and chat on selection and on their
    # timers, the evaluate list on its timer): every redraw unchooses the deleted run.
    open_tab(page, "chat")
    wait_shown(page, "#chat-model", gone.id, t("chatui.no_adapter", "en"))  # back to the base alone
    open_tab(page, "evaluate")
    wait_shown(page, "#eval-runs", gone.id, kept.id)  # the other chosen run stays chosen
    open_tab(page, "arena")
    wait_shown(page, "#arena-a", gone.id)
    wait_shown(page, "#arena-b", gone.id, kept.id)  # the other side keeps its run

    # Later redraws send the lists' values: a new run still reaches every list, with no error.
    later = finished_run(server.home)
    for tab, css in (("chat", "#chat-model"), ("arena", "#arena-a"), ("evaluate", "#eval-runs")):
        open_tab(page, tab)
        wait_option(page, css, later.id)
    assert STALE not in page.inner_text("body")
    assert kept.id in shown(page, "#arena-b") and kept.id in shown(page, "#eval-runs")
    assert not real_page_errors(errors), errors
