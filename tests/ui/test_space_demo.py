"""A studio in demo mode (as on a Hugging Face Space), driven by two visitors at once.

Two gradio_client sessions: the step cap is refused through the API; one visitor's run is not
listed for the other, who cannot read, stop or chat with it by id, nor start while it trains.
Two browsers (Chromium, when installed): the banner, no export panel, and each browser's Runs
tab shows only its own runs, also after a reload (the visitor token is kept by the browser).
"""

import os

import pytest
from gradio_client import Client

from helpers import fast_overrides, wait_for

CAP = 1000  # above the demo recipe (~430 steps), so the page's default Start is allowed


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    from conftest import Server

    with pytest.MonkeyPatch.context() as env:  # the server process copies the environment at start
        env.setenv("STUDIO_DEMO", "1")
        env.setenv("STUDIO_DEMO_MAX_STEPS", str(CAP))
        env.delenv("SPACE_ID", raising=False)
        srv = Server(tmp_path_factory.mktemp("demo") / "home")
    yield srv
    srv.stop()


def run_ids(client) -> list[str]:
    return [r["id"] for r in client.predict(api_name="/list_runs")]


def test_caps_and_isolation_between_two_api_sessions(demo_server):
    a, b = Client(demo_server.url, verbose=False), Client(demo_server.url, verbose=False)
    with pytest.raises(Exception, match=f"at most {CAP} steps"):
        a.predict(fast_overrides(max_steps=CAP + 1), api_name="/start_run")
    rid = a.predict(fast_overrides(max_steps=CAP, eval_every=500), api_name="/start_run")["run_id"]
    try:
        wait_for(lambda: a.predict(rid, api_name="/run_status")["step"] >= 1, what="A's run to train")
        assert rid in run_ids(a) and rid not in run_ids(b)
        for call in ((rid, "/run_status"), (rid, -1, "/run_metrics")):
            with pytest.raises(Exception, match="No run called"):
                b.predict(*call[:-1], api_name=call[-1])
        assert b.predict(api_name="/stop_run") == {"run_id": None}  # nothing of B's is active
        with pytest.raises(Exception, match="Another visitor"):
            b.predict(fast_overrides(), api_name="/start_run")
        assert a.predict(rid, api_name="/run_status")["state"] == "running"
    finally:
        assert a.predict(api_name="/stop_run") == {"run_id": rid}
    wait_for(lambda: a.predict(rid, api_name="/run_status")["state"] == "stopped", what="A's run to stop")
    with pytest.raises(Exception, match="no finished run called"):
        b.predict("Hi", [], rid, 8, 0.0, api_name="/chat")
    assert a.predict("Hi", [], rid, 8, 0.0, api_name="/chat")  # the owner can


@pytest.mark.browser
def test_two_browsers_see_only_their_own_runs(demo_server, browser):
    first, second = browser.new_context(), browser.new_context()
    try:
        a, b = first.new_page(), second.new_page()
        for page in (a, b):
            page.goto(demo_server.url)
            page.wait_for_selector("#start-btn")
        assert "Demo studio" in a.inner_text("#demo-banner")
        a.get_by_role("tab", name="Chat").click()
        a.wait_for_selector("#chat-model")
        assert a.locator("#export-panel").count() == 0 or not a.locator("#export-panel").is_visible()
        a.get_by_role("tab", name="Train").click()
        a.fill("#field-train-epochs textarea, #field-train-epochs input", "0.05")  # a few steps
        a.click("#start-btn")
        a.wait_for_function("() => /Completed|Stopped/.test(document.querySelector('#train-status')?.innerText ?? '')",
                            timeout=300000)
        mine = wait_for(lambda: [p.name for p in (demo_server.home / "runs").iterdir() if runs_text(a, p.name)],
                        timeout=60, what="A's run in A's Runs tab")
        assert len(mine) == 1
        assert mine[0] not in runs_text(b, None)
        a.reload()  # the browser keeps its visitor token: its runs are still its own
        a.wait_for_selector("#start-btn")
        assert runs_text(a, mine[0])
    finally:
        first.close()
        second.close()


def runs_text(page, expect: str | None) -> str:
    """The Runs tab's table (waiting for `expect` in it, briefly, when given)."""
    page.get_by_role("tab", name="Runs").click()
    page.wait_for_selector("#runs-table")
    if expect:
        try:
            page.wait_for_function("(id) => (document.querySelector('#runs-table')?.innerText ?? '').includes(id)",
                                   arg=expect, timeout=5000)
        except Exception:
            return ""
    return page.inner_text("#runs-table")
