"""The Compare tab: an A/B arena of two models, blind votes, win rates and ratings.

    parts = arena_tab.build(ws, texts, lang, engine)   # engine: the Chat tab's studio.arena.Arena

Each side is a model id (studio.arena): a base ("demo", a base a run was trained on), a finished
run's adapter ("run:<id>"), or a weighted combination of two runs' adapters on one base
("mix:run:<a>@0.7+run:<b>@0.3", PEFT add_weighted_adapter). One prompt goes to both; answers
stream into two text panes (text components: nothing typed or generated is rendered as HTML).
Adapters on one base share one loaded base, so the panes answer one after the other.

Blind mode (default) hides which model is which and puts model A on the left or the right by a
coin toss per prompt (`assign_sides`), so position bias cannot decide; the vote (left / right /
tie / both bad) reveals the sides. Votes go to `<home>/arena/votes.jsonl` (VoteStore) with the
prompt, both answers, the sides and the settings. Below: win rates per pair with vote counts,
and with more than two models compared, Bradley–Terry ratings with 95% bootstrap intervals.
In demo mode only votes on the visitor's own runs count (studio.arena.visible_votes). The lists
follow new and deleted runs (a timer on the run store's signature); a chosen model whose run was
deleted is unchosen.

Batch mode takes prompts typed one per line, an uploaded file, or a run's held-out test split,
answers them all with both models (greedy, batched), then shows the pairs one after another.
"""

from __future__ import annotations

import html
import random
from pathlib import Path

import gradio as gr
import pandas as pd

from studio.arena import (VoteStore, assign_sides, bradley_terry, mix_id, prompts_from, run_ids_in, visible_votes,
                          win_rates)
from studio.errors import UserError, explain
from studio.i18n import render, t
from studio.infer import chat_messages
from studio.ui import chat_tab
from studio.ui.texts import Texts

MAX_BATCH = 100
SIDES_SHOWN = ("left", "right")
_rng = random.SystemRandom()  # which model goes left: a fair coin nobody can predict


# --- names and lists ---------------------------------------------------------------------------------

def display_name(model_id: str, lang: str | None = None) -> str:
    """How a model id is shown: the bundled base in words, runs by id, combinations as written."""
    if model_id == "demo":
        return t("ui.chat.base_model", lang)
    if model_id.startswith("run:"):
        return model_id[4:]
    return model_id


def model_choices(ws, lang: str | None = None, extra=()) -> list[tuple[str, str]]:
    """Bases, finished runs ("run:<id>") and any combinations already in use (`extra`)."""
    choices = list(chat_tab.base_choices(ws, lang))
    choices += [(chat_tab.run_label(r, lang), "run:" + r["id"]) for r in chat_tab.finished_runs(ws)]
    known = {value for _, value in choices}
    choices += [(value, value) for value in extra if value and value not in known]
    return choices


def kept_model(ws, model_id):
    """The model id while every run it names still exists (None once one was deleted)."""
    if model_id and all(ws.has_run(rid) for rid in run_ids_in(model_id)):
        return model_id
    return None


def kept(choices: list[tuple[str, str]], value, gone: bool = False) -> dict:
    """A list redrawn with fresh `choices`; its value unchosen (None) when it is `gone` or no longer
    listed, and left alone otherwise."""
    drop = gone or (value is not None and value not in {v for _, v in choices})
    return gr.update(choices=choices, **({"value": None} if drop else {}))


def default_pair(ws) -> tuple[str, str]:
    """The two newest finished runs, else the newest run against the base (else base, base)."""
    runs = ["run:" + r["id"] for r in chat_tab.finished_runs(ws)]
    if len(runs) >= 2:
        return runs[0], runs[1]
    if runs:
        return runs[0], "demo"
    return "demo", "demo"


def test_split_choices(ws) -> list[tuple[str, str]]:
    return [(chat_tab.run_label(r), r["id"]) for r in ws.store.list()
            if (Path(ws.store.root) / r["id"] / "data" / "test.jsonl").is_file()]


# --- tables ------------------------------------------------------------------------------------------

def win_table(votes: list[dict], lang: str | None = None) -> pd.DataFrame:
    """Win rates per pair, with the number of votes, as strings (a Dataframe shows text)."""
    columns = [t("chatui.col." + name, lang) for name in
               ("model_a", "model_b", "votes", "a_wins", "b_wins", "ties", "both_bad", "a_rate", "b_rate")]
    rows = [[display_name(r["a"], lang), display_name(r["b"], lang), str(r["votes"]), str(r["a_wins"]),
             str(r["b_wins"]), str(r["ties"]), str(r["both_bad"]), f"{r['a_rate']:.0%}", f"{r['b_rate']:.0%}"]
            for r in win_rates(votes)]
    return pd.DataFrame(rows, columns=columns)


def rating_table(votes: list[dict], lang: str | None = None) -> pd.DataFrame | None:
    """Bradley–Terry ratings with 95% intervals, when more than two models were compared."""
    models = {v["a"] for v in votes} | {v["b"] for v in votes}
    if len(models) <= 2:
        return None
    counts = {m: sum(1 for v in votes if m in (v["a"], v["b"])) for m in models}
    columns = [t("chatui.col." + name, lang) for name in ("model", "rating", "interval", "votes")]
    rows = [[display_name(m, lang), f"{r:.0f}", f"{low:.0f} – {high:.0f}", str(counts[m])]
            for m, (r, low, high) in bradley_terry(votes).items()]
    return pd.DataFrame(rows, columns=columns)


def tables(ws, lang: str):
    """(win-rate update, ratings update, note) for the current votes: in demo mode only those on
    the visitor's own runs (and on bases), so no other visitor's run id shows."""
    votes = visible_votes(VoteStore(ws.home).all(), ws.store)
    ratings = rating_table(votes, lang)
    note = t("chatui.no_votes", lang) if not votes else t("chatui.votes_count", lang, n=len(votes))
    if votes and ratings is None:
        note += " " + t("chatui.ratings_later", lang)
    rating_update = gr.update(value=ratings, visible=True) if ratings is not None else gr.update(visible=False)
    return gr.update(value=win_table(votes, lang)), rating_update, note


# --- pairs and votes ---------------------------------------------------------------------------------

def new_pair(a: str, b: str, prompt: str, blind: bool, settings: dict, rng=_rng) -> dict:
    """One comparison: which model is on the left (a coin toss when blind; A otherwise)."""
    return {"a": a, "b": b, "prompt": prompt, "left": assign_sides(rng) if blind else "a", "blind": bool(blind),
            "answers": {"a": "", "b": ""}, "settings": settings, "voted": False, "done": False, "queue": [],
            "total": 1, "index": 1}


def side_model(pair: dict, side: str) -> str:
    """The model key ("a"/"b") shown on `side` ("left"/"right")."""
    other = "b" if pair["left"] == "a" else "a"
    return pair["left"] if side == "left" else other


def winner_of(pair: dict, choice: str) -> str:
    """A vote on the page (left / right / tie / both_bad) -> the stored winner (a / b / tie / both_bad)."""
    return side_model(pair, choice) if choice in SIDES_SHOWN else choice


def record_vote(ws, pair: dict, choice: str) -> dict:
    """Save the vote on `pair`; UserError when there is nothing to vote on."""
    if not pair or pair.get("voted") or not pair.get("done") or not any(pair.get("answers", {}).values()):
        raise UserError("chatui.nothing_to_vote")
    settings = {**pair.get("settings", {}), "blind": pair.get("blind", True),
                "batch": pair.get("total", 1) > 1}
    return VoteStore(ws.home).add(a=pair["a"], b=pair["b"], winner=winner_of(pair, choice), left=pair["left"],
                                  prompt=pair["prompt"], answer_a=pair["answers"]["a"],
                                  answer_b=pair["answers"]["b"], settings=settings)


def reveal(pair: dict | None, lang: str, choice: str | None = None) -> str:
    """Who was on which side (hidden in blind mode until the vote), and the vote."""
    if not pair:
        return ""
    if pair.get("blind") and not pair.get("voted"):
        return t("chatui.hidden", lang)
    left = html.escape(display_name(pair[side_model(pair, "left")], lang), quote=False)
    right = html.escape(display_name(pair[side_model(pair, "right")], lang), quote=False)
    text = t("chatui.sides", lang, left=left, right=right)
    if choice:
        text += " " + t("chatui.your_vote", lang, vote=t("chatui.vote." + choice, lang))
    return text


def panes(pair: dict) -> tuple[str, str]:
    return pair["answers"][side_model(pair, "left")], pair["answers"][side_model(pair, "right")]


def progress_line(pair: dict, lang: str) -> str:
    return t("chatui.batch_position", lang, i=pair["index"], n=pair["total"]) if pair.get("total", 1) > 1 else ""


def build(ws, texts: Texts, lang, engine):
    # one update object per button: gradio consumes an update dict, so a shared one would be spent
    votes_enabled = lambda on: [gr.update(interactive=on) for _ in range(4)]  # noqa: E731
    texts.add(gr.Markdown, value="chatui.arena_intro", elem_classes="tab-intro")
    a0, b0 = "demo", "demo"
    with gr.Row():
        model_a = texts.add(gr.Dropdown, choices=lambda code: model_choices(ws, code), value=a0,
                            label="chatui.model_a", scale=2, elem_id="arena-a")
        model_b = texts.add(gr.Dropdown, choices=lambda code: model_choices(ws, code), value=b0,
                            label="chatui.model_b", scale=2, elem_id="arena-b")
        blind = texts.add(gr.Checkbox, value=True, label="chatui.blind", info="chatui.blind_help", scale=1,
                          elem_id="arena-blind")
    with texts.add(gr.Accordion, label="chatui.mix_title", open=False, elem_id="arena-mix"):
        texts.add(gr.Markdown, value="chatui.mix_intro", elem_classes="field-note")
        with gr.Row():
            # Run-id lists take any value at Gradio's door (allow_custom_value): a run deleted while
            # chosen would otherwise fail every later event that reads the list (Gradio checks values
            # against the choices before the handler runs), the redraw that unchooses it included.
            # The handlers check the ids (ws.store.get). No run is chosen until the user picks one.
            mix_run1 = texts.add(gr.Dropdown, choices=lambda code: chat_tab.adapter_choices(ws, code)[1:],
                                 value=None, allow_custom_value=True, label="chatui.mix_first", scale=3,
                                 elem_id="arena-mix-first")
            mix_w1 = texts.add(gr.Number, value=0.5, label="chatui.mix_weight", minimum=-10, maximum=10, scale=1)
            mix_run2 = texts.add(gr.Dropdown, choices=lambda code: chat_tab.adapter_choices(ws, code)[1:],
                                 value=None, allow_custom_value=True, label="chatui.mix_second", scale=3,
                                 elem_id="arena-mix-second")
            mix_w2 = texts.add(gr.Number, value=0.5, label="chatui.mix_weight", minimum=-10, maximum=10, scale=1)
        with gr.Row():
            mix_to_a = texts.add(gr.Button, value="chatui.mix_use_a", size="sm", elem_id="arena-mix-a")
            mix_to_b = texts.add(gr.Button, value="chatui.mix_use_b", size="sm", elem_id="arena-mix-b")
    system = texts.add(gr.Textbox, label="chatui.system", placeholder="chatui.system_placeholder", lines=1,
                       max_lines=6, elem_id="arena-system")
    controls = chat_tab.settings_controls(texts, "arena")
    with gr.Row():
        prompt = texts.add(gr.Textbox, label="chatui.arena_prompt_label", placeholder="chatui.arena_placeholder",
                           show_label=False, scale=5, lines=2, elem_id="arena-prompt")
        with gr.Column(scale=1, min_width=140):
            send = texts.add(gr.Button, value="chatui.arena_send", variant="primary", elem_id="arena-send")
            stop = texts.add(gr.Button, value="chatui.stop_button", size="sm", elem_id="arena-stop")
    status = gr.Markdown("", elem_id="arena-status", elem_classes="field-note")
    # Answers are text boxes: what a model writes is shown as typed, never rendered.
    with gr.Row(equal_height=True):
        left = texts.add(gr.Textbox, label="chatui.left", lines=10, max_lines=24, interactive=False,
                         elem_id="arena-left", elem_classes="arena-pane")
        right = texts.add(gr.Textbox, label="chatui.right", lines=10, max_lines=24, interactive=False,
                          elem_id="arena-right", elem_classes="arena-pane")
    with gr.Row(elem_id="arena-votes"):
        vote_buttons = [texts.add(gr.Button, value=f"chatui.vote_button.{choice}", interactive=False,
                                  elem_id=f"vote-{choice}")
                        for choice in ("left", "tie", "both_bad", "right")]
    shown = gr.Markdown("", elem_id="arena-reveal")
    next_pair = texts.add(gr.Button, value="chatui.next_pair", visible=False, elem_id="arena-next")
    with texts.add(gr.Accordion, label="chatui.batch_title", open=False, elem_id="arena-batch"):
        texts.add(gr.Markdown, value="chatui.batch_intro", elem_classes="field-note")
        batch_from = texts.add(gr.Radio, choices=lambda code: [(t("chatui.batch_typed", code), "typed"),
                                                                (t("chatui.batch_file", code), "file"),
                                                                (t("chatui.batch_run", code), "run")],
                               value="typed", label="chatui.batch_from", elem_id="arena-batch-from")
        batch_text = texts.add(gr.Textbox, label="chatui.batch_prompts", lines=5, max_lines=20,
                               elem_id="arena-batch-text")
        with gr.Row():
            batch_file = texts.add(gr.File, label="chatui.batch_upload", type="filepath",
                                   file_types=[".txt", ".json", ".jsonl", ".csv", ".tsv", ".parquet"])
            batch_run = texts.add(gr.Dropdown, choices=lambda code: test_split_choices(ws), value=None,
                                  allow_custom_value=True, label="chatui.batch_split")  # as the mix lists
        batch_go = texts.add(gr.Button, value="chatui.batch_go", elem_id="arena-batch-go")
    texts.add(gr.Markdown, value="chatui.results_title", elem_classes="data-section")
    counts = gr.Markdown("", elem_id="arena-counts", elem_classes="field-note")
    wins = gr.Dataframe(win_table([]), datatype="str", interactive=False, wrap=True, elem_id="arena-wins")
    ratings = gr.Dataframe(None, datatype="str", interactive=False, visible=False, elem_id="arena-ratings")
    pair_state = gr.State(None)
    signature = gr.State(None)
    timer = gr.Timer(chat_tab.REFRESH_SECONDS)

    def settings_dict(max_new, temp, p, k, penalty, stops) -> tuple:
        settings = chat_tab.settings_of(max_new, temp, p, k, penalty, stops)
        return settings, settings.to_dict()

    def send_prompt(text, a, b, is_blind, system_text, max_new, temp, p, k, penalty, stops, code,
                    request: gr.Request):
        """Both answers, streamed into the panes; then the votes open."""
        outputs = lambda pair, l_text, r_text, note, on: (  # noqa: E731
            l_text, r_text, reveal(pair, code), note, pair, *votes_enabled(on), gr.update(visible=False))
        if not (text or "").strip():
            yield outputs(None, "", "", "⚠ " + t("chatui.empty_prompt", code), False)
            return
        session = getattr(request, "session_hash", None) or "?"
        flag = chat_tab._cancels[session] = chat_tab.StopFlag()
        try:
            if not a or not b or a == b:
                raise UserError("arena.same_model")
            settings, as_dict = settings_dict(max_new, temp, p, k, penalty, stops)
            pair = new_pair(a, b, text.strip(), is_blind, as_dict)
            loading = t("chatui.loading", code) + " " + chat_tab.busy_note(ws, code)
            yield outputs(pair, "", "", loading, False)
            loaded = {key: engine.resolve(pair[key]) for key in ("a", "b")}  # load both before answering
            messages = ([{"role": "system", "content": system_text}] if (system_text or "").strip() else [])
            messages = chat_messages(messages + [{"role": "user", "content": pair["prompt"]}])
            for side in SIDES_SHOWN:
                key = side_model(pair, side)
                pool, name = loaded[key]
                for answer in pool.stream(name, messages, settings, flag.next()):
                    pair["answers"][key] = answer
                    yield outputs(pair, *panes(pair), loading, False)
                if flag.stopped:
                    break
            ready = any(pair["answers"].values())
            pair["done"] = ready  # only a finished pair can be voted on (not one still streaming)
            if flag.stopped:
                note = t("chatui.stopped", code)
            elif not ready:
                note = "⚠ " + t("chatui.no_answer", code)
            else:  # a model that ended at once leaves an empty pane: say so, it is a real answer
                silent = [side for side in SIDES_SHOWN if not pair["answers"][side_model(pair, side)].strip()]
                note = t("chatui.vote_now", code) + "".join(
                    " " + t("chatui.empty_side", code, side=t("chatui." + side, code)) for side in silent)
            yield outputs(pair, *panes(pair), note, ready)
        except Exception as exc:
            yield outputs(None, "", "", "⚠ " + html.escape(render(explain(exc), code), quote=False), False)
        finally:
            if chat_tab._cancels.get(session) is flag:
                chat_tab._cancels.pop(session, None)

    def vote(choice: str):
        def handler(pair, code):
            try:
                record_vote(ws, pair, choice)
            except Exception as exc:
                return (gr.skip(), "⚠ " + html.escape(render(explain(exc), code), quote=False), gr.skip(),
                        *[gr.skip() for _ in range(8)])
            pair = {**pair, "voted": True}
            more = bool(pair.get("queue"))
            note = t("chatui.voted_next", code) if more else (
                t("chatui.batch_done", code, n=pair["total"]) if pair.get("total", 1) > 1 else t("chatui.voted", code))
            win_update, rating_update, count_note = tables(ws, code)
            return (reveal(pair, code, choice), note, pair, *votes_enabled(False), gr.update(visible=more),
                    win_update, rating_update, count_note)
        return handler

    def show_next(pair, code):
        if not pair or not pair.get("queue"):
            return gr.skip(), gr.skip(), "", gr.skip(), pair, *votes_enabled(False), gr.update(visible=False)
        item, rest = pair["queue"][0], pair["queue"][1:]
        pair = {**pair, **item, "queue": rest, "voted": False, "index": pair["index"] + 1}
        return (*panes(pair), reveal(pair, code), progress_line(pair, code), pair, *votes_enabled(True),
                gr.update(visible=False))

    def run_batch(kind, text, upload, run_id, a, b, is_blind, system_text, max_new, code):
        """Every prompt through both models (greedy, batched), then the first pair for voting."""
        outputs = lambda pair, note, on: (  # noqa: E731
            *(panes(pair) if pair else ("", "")), reveal(pair, code), note, pair, *votes_enabled(on),
            gr.update(visible=False))
        try:
            if kind == "file":
                if not upload:
                    raise UserError("arena.no_prompts")
                prompts = prompts_from(Path(upload), limit=MAX_BATCH)
            elif kind == "run":
                if not run_id or not ws.has_run(run_id):
                    raise UserError("arena.no_prompts")
                prompts = prompts_from(ws.store.get(run_id), limit=MAX_BATCH)
            else:
                prompts = prompts_from(text or "", limit=MAX_BATCH)
            if not a or not b or a == b:
                raise UserError("arena.same_model")
            settings = {"max_new_tokens": int(max_new), "temperature": 0.0, "greedy": True}
            yield outputs(None, t("chatui.batch_running", code, n=len(prompts)) + " " + chat_tab.busy_note(ws, code),
                          False)
            system_turn = [{"role": "system", "content": system_text}] if (system_text or "").strip() else []
            chats = [chat_messages(system_turn + [{"role": "user", "content": p}]) for p in prompts]
            answers = {}
            for key, model_id in (("a", a), ("b", b)):
                pool, name = engine.resolve(model_id)
                answers[key] = pool.generate(name, chats, max_new_tokens=int(max_new))
            items = [{"prompt": p, "left": assign_sides(_rng) if is_blind else "a", "done": True,
                      "answers": {"a": answers["a"][i], "b": answers["b"][i]}} for i, p in enumerate(prompts)]
            pair = {**new_pair(a, b, prompts[0], is_blind, settings), **items[0], "queue": items[1:],
                    "total": len(items)}
            yield outputs(pair, progress_line(pair, code), True)
        except Exception as exc:
            yield outputs(None, "⚠ " + html.escape(render(explain(exc), code), quote=False), False)

    def use_mix(first, w1, second, w2, current_a, current_b, code, target):
        try:
            if not first or not second or first == second:
                raise UserError("arena.combine_needs_two")
            value = mix_id([("run:" + first, float(w1 or 0)), ("run:" + second, float(w2 or 0))])
        except Exception as exc:
            return gr.skip(), "⚠ " + html.escape(render(explain(exc), code), quote=False)
        extra = [value, current_a, current_b]
        return gr.update(choices=model_choices(ws, code, extra), value=value), t("chatui.mix_chosen", code)

    def redraw(code, a, b, first=None, second=None, split=None):
        """Fresh lists; a chosen model, run or test split whose run is gone (deleted) is unchosen,
        the rest kept (a value is sent only when it changes, so a redraw never fights a click)."""
        alive = [kept_model(ws, m) for m in (a, b)]
        choices = model_choices(ws, code, [m for m in alive if m])
        adapters = chat_tab.adapter_choices(ws, code)[1:]
        splits = test_split_choices(ws)
        return (kept(choices, a, bool(a) and alive[0] is None), kept(choices, b, bool(b) and alive[1] is None),
                kept(adapters, first), kept(adapters, second), kept(splits, split), ws.store.signature())

    def poll(code, a, b, first, second, split, seen):
        if ws.store.signature() == seen:
            return tuple(gr.skip() for _ in range(6))
        return redraw(code, a, b, first, second, split)

    def load(code):
        a, b = default_pair(ws)
        choices = model_choices(ws, code)
        return (gr.update(choices=choices, value=a), gr.update(choices=choices, value=b),
                gr.update(choices=chat_tab.adapter_choices(ws, code)[1:]),
                gr.update(choices=chat_tab.adapter_choices(ws, code)[1:]),
                gr.update(choices=test_split_choices(ws)), ws.store.signature(), *tables(ws, code))

    def compare_run(run_id, code):
        """From the Train tab's Compare: this run's adapter against its base, blind."""
        chosen = "run:" + run_id if run_id and ws.has_run(run_id) and ws.store.get(run_id).output_dir() else None
        a, b = (chosen, chat_tab.run_base(ws, run_id)) if chosen else default_pair(ws)
        choices = model_choices(ws, code, [a, b])
        return gr.Tabs(selected="arena"), gr.update(choices=choices, value=a), gr.update(choices=choices, value=b)

    pane_outputs = [left, right, shown, status, pair_state, *vote_buttons, next_pair]
    table_outputs = [wins, ratings, counts]
    settings_inputs = [system, *controls, lang]
    for trigger in (send.click, prompt.submit):
        trigger(send_prompt, [prompt, model_a, model_b, blind, *settings_inputs], pane_outputs,
                api_visibility="private")
    def stop_answers(request: gr.Request):
        event = chat_tab._cancels.get(getattr(request, "session_hash", None) or "?")
        if event is not None:
            event.set()

    stop.click(stop_answers, None, None, api_visibility="private", queue=False)
    for button, choice in zip(vote_buttons, ("left", "tie", "both_bad", "right")):
        button.click(vote(choice), [pair_state, lang], [shown, status, pair_state, *vote_buttons, next_pair,
                                                        *table_outputs], api_visibility="private")
    next_pair.click(show_next, [pair_state, lang], pane_outputs, api_visibility="private")
    batch_go.click(run_batch, [batch_from, batch_text, batch_file, batch_run, model_a, model_b, blind, system,
                               controls[0], lang], pane_outputs, api_visibility="private")
    mix_to_a.click(lambda *args: use_mix(*args, "a"), [mix_run1, mix_w1, mix_run2, mix_w2, model_a, model_b, lang],
                   [model_a, status], api_visibility="private")
    mix_to_b.click(lambda *args: use_mix(*args, "b"), [mix_run1, mix_w1, mix_run2, mix_w2, model_a, model_b, lang],
                   [model_b, status], api_visibility="private")
    list_outputs = [model_a, model_b, mix_run1, mix_run2, batch_run, signature]
    chosen_inputs = [model_a, model_b, mix_run1, mix_run2, batch_run]
    timer.tick(poll, [lang, *chosen_inputs, signature], list_outputs, api_visibility="private",
               show_progress="hidden", queue=False)
    texts.on_language(lambda code: tables(ws, code), lang, table_outputs)
    return {"load": (load, [lang], list_outputs + table_outputs),
            "select": (lambda code, *chosen: (*redraw(code, *chosen), *tables(ws, code)), [lang, *chosen_inputs],
                       list_outputs + table_outputs),
            "compare_run": (compare_run, [model_a, model_b])}
