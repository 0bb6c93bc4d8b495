"""The Train tab's "Quick sweep" accordion: short trials of one setting, the best value named.

    panel = sweep_panel.build(ctx, texts, fields, lang)   # inside the Train tab's Blocks

The user picks a setting (learning rate, LoRA rank, epochs), types 2-5 values and presses Start
sweep; every trial uses the settings of the Train form above, made short (studio/sweep.py). A 2 s
`gr.Timer` reads the sweep record and the trials' metrics and redraws only when they changed, so
a reload or a second tab shows the same sweep. "Use the best" writes the best value into the Train
form's field; the user then presses Start for the full run. Handlers are thin: the sweep itself
is studio/sweep.py. Values typed by the user are shown only after parsing (numbers), and every
sentence is escaped before it reaches a Markdown component.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import gradio as gr
import pandas as pd

from studio.config import field_label
from studio.errors import explain
from studio.i18n import render, t
from studio.sweep import (ACTIVE, PARAMS, SweepSpec, active_sweep, latest_record, load_record, start_sweep,
                          value_text)

STATES = ("waiting", "starting", "running", "stopping", "completed", "stopped", "failed", "crashed", "skipped")


def param_choices(lang: str) -> list[tuple[str, str]]:
    return [(render(field_label(key), lang), name) for name, key in PARAMS.items()]


def _state(state: str, lang: str) -> str:
    return t("sweep.state." + (state if state in STATES else "failed"), lang)


def current_record(ctx, sweep_id: str = "") -> dict | None:
    """The sweep to show: the one running in this process, else the one this page started, else
    the newest record in the home."""
    sweep = active_sweep(ctx.home)
    if sweep is not None and ctx.sees(sweep.record()):
        return sweep.record()
    # Demo mode: another visitor's sweep is not shown, neither asked for by id nor as the newest.
    for record in ((load_record(ctx.home, sweep_id) if sweep_id else None), latest_record(ctx.home)):
        if ctx.sees(record):
            return record
    return None


def _loss(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and math.isfinite(value) else "–"


def progress_text(record: dict | None, lang: str) -> str:
    if not record:
        return t("sweep.ui.none", lang)
    trials, state = record["trials"], record["state"]
    if state in ACTIVE and record.get("current") is not None:
        index = record["current"]
        return html.escape(t("sweep.ui.progress", lang, k=index + 1, n=len(trials), label=trials[index]["label"],
                             state=_state(trials[index]["state"], lang)))
    if state == "crashed":
        return html.escape(t("sweep.ui.crashed", lang))
    done = sum(1 for trial in trials if trial["state"] == "completed")
    return html.escape(t("sweep.ui.ended", lang, state=_state(state, lang), done=done, n=len(trials)))


def best_text(record: dict | None, lang: str) -> str:
    if not record or record["state"] in ACTIVE:
        return ""
    best = record.get("best")
    if not best:
        return html.escape(t("sweep.no_best", lang))
    return "**" + html.escape(t("sweep.best", lang, label=record["trials"][best["index"]]["label"],
                                 loss=_loss(best["loss"]), by=t("sweep.by." + best["by"], lang))) + "**"


def table(record: dict | None, lang: str) -> pd.DataFrame:
    columns = [t("sweep.ui.col_" + c, lang) for c in ("value", "eval_loss", "loss", "state", "run")]
    rows = [[trial["label"], _loss(trial.get("final_eval_loss")), _loss(trial.get("final_loss")),
             _state(trial["state"], lang), trial.get("run_id") or ""] for trial in (record or {}).get("trials", [])]
    return pd.DataFrame(rows, columns=columns)


def trial_events(ctx, record: dict | None) -> dict[str, list[dict]]:
    """Each trial's metrics by its label ([] for a trial not started yet: its series must still
    be known from the first draw, see plot_frame)."""
    found = {}
    for trial in (record or {}).get("trials", []):
        started = trial.get("run_id") and ctx.has_run(trial["run_id"])
        found[trial["label"]] = ctx.store.get(trial["run_id"]).read_metrics() if started else []
    return found


def plot_frame(events: dict[str, list[dict]]) -> pd.DataFrame | None:
    """Eval loss by step, one series per trial (train loss when no trial has eval loss). Every
    series gets a NaN point at the first step: gradio 6.31's LinePlot fixes its series at the
    first draw, and a trial that starts later would otherwise never be drawn."""
    key = "eval_loss" if any(isinstance(e.get("eval_loss"), (int, float)) for evs in events.values()
                             for e in evs) else "loss"
    rows = [{"step": e["step"], "loss": e[key], "series": label} for label, evs in events.items()
            for e in evs if isinstance(e.get(key), (int, float))]
    if not rows:
        return None
    first = min(row["step"] for row in rows)
    present = {row["series"] for row in rows}
    rows += [{"step": first, "loss": float("nan"), "series": label} for label in events if label not in present]
    return pd.DataFrame(rows)


def signature(ctx, record: dict | None) -> list:
    """Changes whenever the record or a trial's metrics change: lets the timer skip redraws."""
    if not record:
        return []
    sizes = []
    for trial in record["trials"]:
        path = Path(ctx.store.root) / (trial.get("run_id") or "-") / "metrics.jsonl"
        sizes.append(path.stat().st_size if trial.get("run_id") and path.is_file() else 0)
    return [record["id"], record["state"], record.get("current"), [tr["state"] for tr in record["trials"]], sizes]


def build(ctx, texts, fields: dict, lang: gr.components.Component) -> dict:
    """The accordion's components and handlers; `fields` are the Train form's (key -> component)."""
    keys = list(fields)
    with texts.add(gr.Accordion, label="sweep.ui.title", open=False, elem_id="sweep-panel"):
        texts.add(gr.Markdown, value="sweep.ui.intro", elem_classes="field-note")
        with gr.Row():
            param = texts.add(gr.Dropdown, label="sweep.ui.param", choices=param_choices, value="learning_rate",
                              elem_id="sweep-param", scale=1)
            values = texts.add(gr.Textbox, label="sweep.ui.values", placeholder="sweep.ui.values_placeholder",
                               max_lines=1, elem_id="sweep-values", scale=2)
        with gr.Row():
            start = texts.add(gr.Button, value="sweep.ui.start", variant="primary", elem_id="sweep-start")
            stop = texts.add(gr.Button, value="sweep.ui.stop", variant="stop", interactive=False,
                             elem_id="sweep-stop")
        progress = gr.Markdown("", elem_id="sweep-progress")
        plot = gr.LinePlot(None, x="step", y="loss", color="series", title="Eval loss", height=240,
                           elem_id="sweep-plot")
        texts.register(plot, title="sweep.ui.plot")
        grid = gr.Dataframe(table(None, "en"), datatype="str", interactive=False, elem_id="sweep-table")
        best = gr.Markdown("", elem_id="sweep-best")
        use_best = texts.add(gr.Button, value="sweep.ui.use_best", interactive=False, elem_id="sweep-use-best")

    sweep_id = gr.State("")
    seen = gr.State(None)
    error = gr.State(None)  # a refused Start (Msg dict): stays until the next Start or an edit

    def view(sid, sig, err, lang_code, force=False):
        record = current_record(ctx, sid)
        new_sig = signature(ctx, record)
        if not force and new_sig == sig:
            return [gr.skip()] * 9
        active = bool(record) and record["state"] in ACTIVE
        shown = (f"⚠ {html.escape(t('sweep.ui.could_not_start', lang_code))} {html.escape(render(err, lang_code))}"
                 if err else progress_text(record, lang_code))
        return [record["id"] if record else sid, new_sig, shown,
                plot_frame(trial_events(ctx, record)), table(record, lang_code), best_text(record, lang_code),
                gr.update(interactive=not active and not ctx.jobs.busy()), gr.update(interactive=active),
                gr.update(interactive=bool(record and record.get("best")) and not active)]

    poll_inputs = [sweep_id, seen, error, lang]
    poll_outputs = [sweep_id, seen, progress, plot, grid, best, start, stop, use_best]

    def on_start(lang_code, param_name, text, *form_values):
        from studio.ui.forms import config_from_values
        from studio.ui.train_tab import initial_config

        try:
            base = ctx.admit(config_from_values(keys, list(form_values), base=initial_config()))
            spec = SweepSpec.parse(param_name, text, base)
            sweep = start_sweep(ctx.jobs, base, spec, start=ctx.for_visitor(ctx.start),  # trials are theirs
                                owner=ctx.owner())
        except Exception as exc:  # anything unexpected is still one sentence where the user looks
            err = explain(exc).to_dict()
            return [gr.skip(), None, err] + view("", None, err, lang_code, force=True)[2:]
        return [sweep.id, None, None] + view(sweep.id, None, None, lang_code, force=True)[2:]

    def on_stop(sid, sig, err, lang_code):
        sweep = active_sweep(ctx.home)
        if sweep is not None and ctx.sees(sweep.record()):  # demo mode: only its visitor stops it
            sweep.stop()
        return view(sid, sig, err, lang_code, force=True)

    field_outputs = [fields[key] for key in PARAMS.values()]

    def on_use_best(sid, lang_code):
        record = current_record(ctx, sid)
        best = (record or {}).get("best")
        if not best:
            return [gr.skip()] * len(field_outputs) + [gr.skip()]
        key = PARAMS[record["param"]]
        text = value_text(best["value"])
        updates = [gr.update(value=text) if k == key else gr.skip() for k in PARAMS.values()]
        return updates + [html.escape(t("sweep.ui.used", lang_code, label=render(field_label(key), lang_code),
                                        value=text))]

    start.click(on_start, [lang, param, values] + [fields[k] for k in keys],
                [sweep_id, seen, error] + poll_outputs[2:], api_visibility="private",
                concurrency_limit=None, show_progress="hidden")
    stop.click(on_stop, poll_inputs, poll_outputs, api_visibility="private", concurrency_limit=None,
               show_progress="hidden")
    use_best.click(on_use_best, [sweep_id, lang], field_outputs + [best], api_visibility="private",
                   show_progress="hidden")
    for box in (param, values):  # editing the sweep clears a refused Start's sentence
        box.input(lambda: (None, None), None, [error, seen], api_visibility="private", queue=False, show_progress="hidden")
    timer = gr.Timer(2.0)
    timer.tick(view, poll_inputs, poll_outputs, api_visibility="private", concurrency_limit=None,
               show_progress="hidden", queue=False)
    texts.on_language(lambda sid, sig, err, lang_code: view(sid, sig, err, lang_code, force=True), poll_inputs,
                      poll_outputs)
    return {"start": start, "stop": stop, "use_best": use_best, "progress": progress, "plot": plot,
            "table": grid, "best": best, "load": (lambda sid, sig, err, lang_code:
                                                     view(sid, sig, err, lang_code, force=True),
                                                     poll_inputs, poll_outputs)}
