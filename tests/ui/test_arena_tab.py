"""Chat playground and A/B arena in the page: blind voting in the browser, streamed multi-turn chat
through gradio_client, and typed HTML/JS shown as text.

Two tiny adapters of the demo model are trained through the server's own API (`/start_run`, a
few steps each). Screenshots of the arena (en, zh) go to $STUDIO_SHOTS (default /tmp/studio-shots).
"""

import json
import os
import random
from pathlib import Path

import pytest
from gradio_client import Client

from helpers import fast_overrides, wait_for
from test_browser import open_tab, switch_language
from test_chat import send

SHOTS = Path(os.environ.get("STUDIO_SHOTS", "/tmp/studio-shots"))


# --- the page's logic, without a server ---------------------------------------------------------------

def test_blind_sides_are_balanced_and_votes_map_back_to_models(tmp_path):
    from studio.ui import arena_tab

    rng = random.Random(7)
    pairs = [arena_tab.new_pair("run:x", "demo", "q", True, {}, rng) for _ in range(2000)]
    share = sum(p["left"] == "a" for p in pairs) / len(pairs)
    assert 0.45 < share < 0.55
    pair = {**pairs[0], "left": "b", "answers": {"a": "from a", "b": "from b"}}
    assert arena_tab.panes(pair) == ("from b", "from a")
    assert arena_tab.winner_of(pair, "left") == "b" and arena_tab.winner_of(pair, "right") == "a"
    assert arena_tab.winner_of(pair, "tie") == "tie"
    assert "run:x" not in arena_tab.reveal(pair, "en") and "x" in arena_tab.reveal({**pair, "voted": True}, "en")
    assert arena_tab.new_pair("run:x", "demo", "q", False, {})["left"] == "a"  # not blind: A on the left


def test_tables_count_votes_and_rate_more_than_two_models(tmp_path):
    from studio.arena import VoteStore
    from studio.ui import arena_tab

    class Home:
        home = tmp_path

    assert arena_tab.rating_table([], "en") is None
    pair = {**arena_tab.new_pair("run:x", "demo", "<b>q</b>", True, {"max_new_tokens": 8}), "left": "b",
            "answers": {"a": "A", "b": "B"}}
    with pytest.raises(Exception):
        arena_tab.record_vote(Home, pair, "left")  # still streaming: not yet
    pair["done"] = True
    vote = arena_tab.record_vote(Home, pair, "left")
    assert vote["winner"] == "b" and vote["left"] == "b" and vote["settings"]["blind"] is True
    with pytest.raises(Exception):
        arena_tab.record_vote(Home, {**pair, "voted": True}, "left")  # one vote per pair
    table = arena_tab.win_table(VoteStore(tmp_path).all(), "zh")
    assert table.iloc[0].tolist()[2] == "1" and "票数" in table.columns
    store = VoteStore(tmp_path)
    for _ in range(6):
        store.add(a="run:x", b="run:y", winner="a")
        store.add(a="run:y", b="demo", winner="a")
    ratings = arena_tab.rating_table(store.all(), "en")
    assert ratings is not None and ratings.iloc[0, 0] == "x"  # x beats y beats the base


def test_stop_sequences_and_text_display():
    from studio.ui import chat_tab

    assert chat_tab.stop_sequences("###\n\n\\nUser:") == ["###", "\nUser:"]
    typed = '<script>alert(1)</script> <img src=x onerror=alert(1)> [a](javascript:alert(1))'
    shown = chat_tab.as_text(typed)
    assert "<" not in shown
    assert chat_tab.from_display([{"role": "user", "content": shown}])[0]["content"] == typed


# --- through the server -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


def train(client, **extra) -> str:
    """A finished run of a few steps; waits for the device if another run holds it."""
    started = wait_for(lambda: _try_start(client, fast_overrides(**extra)), timeout=600, what="a free device")
    run_id = started["run_id"]
    state = wait_for(lambda: _finished(client, run_id), timeout=600, what=f"run {run_id} to finish")
    assert state == "completed", state
    return run_id


def _try_start(client, overrides):
    try:
        return client.predict(overrides, api_name="/start_run")
    except Exception as exc:
        if "busy" in str(exc).lower() or "running" in str(exc).lower():
            return None
        raise


def _finished(client, run_id):
    state = client.predict(run_id, api_name="/run_status")["state"]
    return state if state in ("completed", "stopped", "failed", "crashed") else None


@pytest.fixture(scope="module")
def two_runs(client):
    first = train(client, max_steps=3, eval_every=3, seed=1, learning_rate=0.003)
    second = train(client, max_steps=3, eval_every=3, seed=2, learning_rate=0.0005, lora_r=4)
    return first, second


def test_streaming_multi_turn_chat_through_the_api(client, two_runs):
    for model in ("demo", two_runs[0]):
        job = client.submit("What is the opposite of hot?", [], model, "Answer briefly.", 24, 0.0, 1.0, 0, 1.0, [],
                            api_name="/chat_stream")
        pieces = list(job)
        first = job.result()
        assert isinstance(first, str) and first
        assert len(pieces) > 2  # it streamed: several growing texts, each a prefix of the answer
        assert all(first.startswith(p) for p in pieces)
        assert first == client.predict("What is the opposite of hot?", [{"role": "system", "content": "Answer briefly."}],
                                       model, 24, 0.0, api_name="/chat")  # greedy: the same answer
        history = [{"role": "user", "content": "What is the opposite of hot?"},
                   {"role": "assistant", "content": [{"type": "text", "text": first}]}]
        second = client.submit("And of big?", history, model, "", 16, 0.7, 0.9, 20, 1.1, ["\n\n"],
                               api_name="/chat_stream").result()
        assert isinstance(second, str) and "\n\n" not in second


def test_stream_refuses_what_is_not_a_model(client):
    with pytest.raises(Exception, match="no finished run"):
        client.submit("Hi", [], "../../etc", "", 8, api_name="/chat_stream").result()


HOSTILE = ['<script>window.pwned = 1</script>', '<img src=x onerror="window.pwned = 2">',
           '<a href="javascript:window.pwned = 3">click me</a> [md](javascript:window.pwned=4)']


@pytest.mark.browser
def test_typed_html_and_js_stay_text_in_the_chat(server, page):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    open_tab(page, "chat")
    for turn, message in enumerate(HOSTILE, start=1):
        send(page, message, turn)
        page.wait_for_function(
            "(n) => [...document.querySelectorAll('#chatbot .bot')].filter(b => b.innerText.trim()).length >= n",
            arg=turn, timeout=90000)
    text = page.inner_text("#chatbot")
    for message in HOSTILE:
        assert message in text  # shown exactly as typed
    assert page.locator("#chatbot img, #chatbot script, #chatbot a[href^='javascript']").count() == 0
    for link in page.locator("#chatbot a").all():
        link.click()
    assert page.evaluate("() => window.pwned") is None
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "chat-en.png"), full_page=True)
    assert not errors


@pytest.mark.browser
def test_blind_ab_vote_reveals_sides_counts_and_persists(server, page, two_runs):
    first, second = two_runs
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    open_tab(page, "arena")
    # the two newest finished runs are preselected, and nothing says which is where
    page.wait_for_function("() => (document.querySelector('#arena-a input')?.value ?? '').includes('·')", timeout=30000)
    chosen = {page.input_value("#arena-a input"), page.input_value("#arena-b input")}
    assert any(second in c for c in chosen) and any(first in c for c in chosen)
    page.fill("#arena-prompt textarea", '<img src=x onerror="window.pwned=1"> What is the opposite of hot?')
    page.click("#arena-send")
    page.wait_for_selector("#vote-left:not([disabled])", timeout=120000)
    page.wait_for_function("() => (document.querySelector('#arena-status')?.innerText ?? '').includes('Vote below')",
                           timeout=180000)
    left, right = page.input_value("#arena-left textarea"), page.input_value("#arena-right textarea")
    assert left.strip() or right.strip()  # (a tiny adapter may end an answer at once: an empty pane)
    hidden = page.inner_text("#arena-reveal")
    assert first not in hidden and second not in hidden
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "arena-en-before-vote.png"), full_page=True)
    page.click("#vote-left")
    page.wait_for_function(
        "(ids) => ids.every(id => (document.querySelector('#arena-reveal')?.innerText ?? '').includes(id))",
        arg=[first, second], timeout=30000)
    page.wait_for_function("() => (document.querySelector('#arena-wins')?.innerText ?? '').includes('100%')"
                           " || (document.querySelector('#arena-wins')?.innerText ?? '').includes('0%')", timeout=30000)
    assert page.locator("#vote-left[disabled]").count() == 1  # one vote per pair
    page.screenshot(path=str(SHOTS / "arena-en.png"), full_page=True)
    # the vote is in the home, with the side the left model was on
    lines = (server.home / "arena" / "votes.jsonl").read_text(encoding="utf-8").splitlines()
    vote = json.loads(lines[-1])
    assert {vote["a"], vote["b"]} == {"run:" + first, "run:" + second}
    assert vote["winner"] == vote["left"]
    assert vote["prompt"].startswith("<img")
    assert (vote["answer_" + vote["left"]], vote["answer_" + ("b" if vote["left"] == "a" else "a")]) == (left, right)
    reveal_text = page.inner_text("#arena-reveal")
    left_model = vote[vote["left"]][4:]
    assert reveal_text.index(left_model) < reveal_text.index(vote["b" if vote["left"] == "a" else "a"][4:])
    # a fresh page reads the votes back from the file
    page.reload()
    page.wait_for_selector("#start-btn")
    open_tab(page, "arena")
    page.wait_for_function(
        "(ids) => ids.every(id => (document.querySelector('#arena-wins')?.innerText ?? '').includes(id))",
        arg=[first, second], timeout=30000)
    assert ": 1" in page.inner_text("#arena-counts")
    switch_language(page, "简体中文")
    page.wait_for_function("() => (document.querySelector('#arena-send')?.innerText ?? '').includes('同时提问')", timeout=30000)
    page.wait_for_function("() => (document.querySelector('#arena-wins')?.innerText ?? '').includes('票数')", timeout=30000)
    page.screenshot(path=str(SHOTS / "arena-zh.png"), full_page=True)
    assert page.evaluate("() => window.pwned") is None
    assert not errors


@pytest.mark.browser
def test_empty_batch_says_one_sentence(server, page):
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    open_tab(page, "arena")
    page.click("#arena-batch")
    page.click("#arena-batch-go")
    page.wait_for_function("() => (document.querySelector('#arena-status')?.innerText ?? '').includes('no prompts')",
                           timeout=30000)


def test_stop_ends_the_answer_in_progress(tmp_path):
    from studio.infer import ChatSettings
    from studio.ui import chat_tab
    from studio.workspace import Workspace

    ws = Workspace(tmp_path)
    engine = chat_tab.Arena(ws.store)
    settings = ChatSettings(max_new_tokens=200)
    messages = [{"role": "user", "content": "Name some animals."}]
    full = list(chat_tab.stream(ws, engine, "demo", "", messages, settings))[-1]
    flag = chat_tab.StopFlag()
    pieces = []
    for text in chat_tab.stream(ws, engine, "demo", "", messages, settings, flag.next()):
        pieces.append(text)
        flag.set()  # Stop pressed after the first piece
    assert len(pieces[-1]) < len(full)
    assert flag.next().is_set()  # a second pane after Stop does not start answering


def choose(page, dropdown: str, text: str):
    """Pick the option containing `text` in a gradio dropdown."""
    page.click(f"{dropdown} input")
    page.locator("ul[role=listbox] li", has_text=text).first.click()


@pytest.mark.browser
def test_export_panel_saves_the_adapter_and_shows_the_code(server, page, two_runs):
    first, _ = two_runs
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    open_tab(page, "chat")
    choose(page, "#chat-model", first)
    page.click("#export-panel")
    page.wait_for_function("(id) => (document.querySelector('#export-command')?.innerText ?? '').includes(id)", arg=first,
                           timeout=30000)
    assert "PeftModel" in page.inner_text("#export-snippet")
    page.locator("#export-kind label").nth(1).click()  # the adapter alone
    page.wait_for_function("() => document.querySelectorAll('#export-kind input')[1]?.checked", timeout=10000)
    page.click("#export-go")
    page.wait_for_function("() => /Saved to|⚠/.test((document.querySelector('#export-status')?.innerText ?? ''))",
                           timeout=120000)
    status = page.inner_text("#export-status")
    assert "⚠" not in status and f"{first}-adapter" in status, status
    saved = server.home / "exports" / f"{first}-adapter"
    assert (saved / "adapter_model.safetensors").is_file() and not list(saved.glob("*.bin"))
    page.wait_for_selector("#export-file a", timeout=30000)  # the zip to download
    # no Hub here: pushing says so in one sentence, and the token box is emptied
    page.fill("#export-repo :is(input, textarea)", "someone/model")
    page.fill("#export-token input", "hf_not_a_real_token")
    page.click("#export-push")
    page.wait_for_function("() => (document.querySelector('#export-status')?.innerText ?? '').includes('⚠')", timeout=60000)
    assert page.input_value("#export-token input") == ""
    assert "hf_not_a_real_token" not in page.content()


def test_chat_while_a_run_trains_answers_or_says_why(client, two_runs):
    started = wait_for(lambda: _try_start(client, fast_overrides(max_steps=3000, eval_every=1000)), timeout=600,
                       what="a free device")
    run_id = started["run_id"]
    try:
        wait_for(lambda: client.predict(run_id, api_name="/run_status")["state"] == "running", timeout=300,
                 what="the run to train")
        answer = client.submit("Hi", [], two_runs[0], "", 8, api_name="/chat_stream").result()
        assert isinstance(answer, str)
        assert client.predict(run_id, api_name="/run_status")["state"] == "running"  # untouched by the chat
    finally:
        client.predict(api_name="/stop_run")
        wait_for(lambda: _finished(client, run_id), timeout=300, what="the run to stop")


def votes_in(home) -> list[dict]:
    path = home / "arena" / "votes.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


@pytest.mark.browser
def test_batch_pairs_come_one_after_another(server, page, two_runs):
    before = len(votes_in(server.home))
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    open_tab(page, "arena")
    page.wait_for_function("() => (document.querySelector('#arena-a input')?.value ?? '').includes('·')", timeout=30000)
    page.click("#arena-batch")
    page.fill("#arena-batch-text textarea", "What is the opposite of hot?\n\nWhat colour is a banana?\n")
    page.click("#arena-batch-go")
    page.wait_for_selector("#vote-left:not([disabled])", timeout=180000)
    assert "1" in page.inner_text("#arena-status") and "2" in page.inner_text("#arena-status")
    page.click("#vote-tie")
    page.click("#arena-next")
    page.wait_for_selector("#vote-left:not([disabled])", timeout=30000)
    page.click("#vote-both_bad")
    page.wait_for_function("() => (document.querySelector('#arena-status')?.innerText ?? '').includes('all 2 pairs')",
                           timeout=30000)
    new = votes_in(server.home)[before:]
    assert [v["winner"] for v in new] == ["tie", "both_bad"]
    assert [v["prompt"] for v in new] == ["What is the opposite of hot?", "What colour is a banana?"]
    assert all(v["settings"]["batch"] for v in new)


@pytest.mark.browser
def test_a_weighted_combination_answers_beside_a_run(server, page, two_runs):
    first, second = two_runs
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    open_tab(page, "arena")
    page.wait_for_function("() => (document.querySelector('#arena-a input')?.value ?? '').includes('·')", timeout=30000)
    page.click("#arena-blind input")  # not blind: the names show at once
    page.click("#arena-mix")
    choose(page, "#arena-mix-first", first)
    choose(page, "#arena-mix-second", second)
    page.click("#arena-mix-b")
    page.wait_for_function("() => (document.querySelector('#arena-b input')?.value ?? '').startsWith('mix:')", timeout=30000)
    page.fill("#arena-prompt textarea", "What sound does a cow make?")
    page.click("#arena-send")
    page.wait_for_selector("#vote-right:not([disabled])", timeout=180000)
    assert "mix:" in page.inner_text("#arena-reveal")  # shown before the vote when not blind
    page.wait_for_function("() => (document.querySelector('#arena-status')?.innerText ?? '').includes('Vote below')",
                           timeout=180000)
    answers = page.input_value("#arena-left textarea"), page.input_value("#arena-right textarea")
    assert any(a.strip() for a in answers)
    if not answers[1].strip():  # an answer can be empty (the model ended at once): the page says so
        assert "without writing anything" in page.inner_text("#arena-status")
    page.click("#vote-right")
    vote = votes_in(server.home)[-1]
    assert vote["b"].startswith("mix:") and vote["winner"] == "b" and vote["settings"]["blind"] is False
    assert vote["answer_b"] == answers[1]  # what was shown is what was recorded
    models = {v["a"] for v in votes_in(server.home)} | {v["b"] for v in votes_in(server.home)}
    if len(models) > 2:  # ratings with intervals once more than two models were compared
        page.wait_for_function("() => (document.querySelector('#arena-ratings')?.innerText ?? '').includes('mix:')",
                               timeout=30000)


def test_compare_button_puts_the_run_against_its_base_blind(server, two_runs):
    from studio.ui.app import build_app
    from studio.workspace import Workspace

    demo = build_app(Workspace(server.home))
    button = next(c for c in demo.texts.outputs() if getattr(c, "elem_id", None) == "to-compare")
    assert button.interactive and "coming soon" not in button.value
    compare = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "compare_run")
    tabs, a, b = compare(two_runs[0], "en")
    assert tabs.selected == "arena" and a["value"] == "run:" + two_runs[0] and b["value"] == "demo"
