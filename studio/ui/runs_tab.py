"""Runs tab: every run in the studio home with state, method, data, final loss and duration.

The table is drawn in the page's language (headers, states, each run's status message from
status.json's code + parameters), so a run started in English reads in Chinese after a switch.
Below it, Resume: click a row (or type a run id) and a crashed, stopped or failed run goes on from
its last complete checkpoint (studio.resume); the plan or the refusal shows next to the button.
Then runs compared, exported, renamed and deleted (studio/ui/runs_compare.py).
"""

from __future__ import annotations

import os
import time

import gradio as gr
import pandas as pd

from studio.compare import run_label
from studio.errors import explain
from studio.evaluate import latest_summary
from studio.i18n import Msg, t
from studio.ui import runs_compare
from studio.ui.forms import note_box
from studio.ui.texts import Texts

COLUMNS = ["run", "label", "state", "method", "model", "data", "steps", "final_loss", "eval", "time", "started",
           "message"]
HEADERS = {**{c: "ui.runs.col." + c for c in COLUMNS}, "label": "compare.col_label"}


def runs_table(store, lang: str | None = None) -> pd.DataFrame:
    rows = []
    for run in store.all():
        r = run.summary()
        state = r["state"] if r["state"] in ("queued", "running", "stopping", "stopped", "completed",
                                             "failed", "crashed") else "unknown"
        rows.append([
            r["id"], run_label(run), t("state." + state, lang), r["method"],
            os.path.basename(r["model"].rstrip("/")) if r["model"].startswith("/") else r["model"],
            os.path.basename(r["data"]),
            f"{r['step']}/{r['total_steps']}" if r["total_steps"] else str(r["step"]),
            round(r["final_loss"], 4) if isinstance(r["final_loss"], float) else None,
            latest_summary(run, lang),  # the newest evaluation: ROUGE-L base → fine-tuned
            f"{r['seconds']:.0f} s" if r["seconds"] else "",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])) if r["created_at"] else "",
            run.message(lang),
        ])
    return pd.DataFrame(rows, columns=[t(HEADERS[c], lang) for c in COLUMNS])


def has_runs(table) -> bool:
    """Whether a drawn table lists a run: the browser sends an empty one back as one blank row."""
    if table is None or len(table) == 0:
        return False
    return any(str(rid).strip() for rid in table.iloc[:, 0])


def resume_run(ctx, rid: str, lang: str | None = None) -> str:
    """Resume run `rid` through the job manager (one job at a time); the plan, or the refusal."""
    from studio.resume import plan_lines

    rid = (rid or "").strip()
    if not rid:
        return t("resume.choose_run", lang)
    try:
        run = ctx.store.get(rid)
    except KeyError:
        return t("resume.unknown_run", lang, run=rid)
    try:
        plan = ctx.jobs.resume(run)
    except Exception as exc:  # a refusal, or anything unexpected, is one sentence by the button
        return explain(exc).render(lang)
    return "\n".join([m.render(lang) for m in plan_lines(plan)] + [t("resume.started", lang)])


def resume_preview(ctx, rid: str, lang: str | None = None) -> str:
    """What Resume would do for run `rid` (from which step, skipped checkpoints), or why it cannot;
    shown when the row is picked, before anything starts."""
    from studio.resume import plan_lines, resume_plan

    try:
        plan = resume_plan(ctx.store.get(rid))
    except Exception as exc:  # an unknown id, or anything unexpected: one sentence
        return explain(exc).render(lang)
    if plan["refusals"]:
        return plan["refusals"][0].render(lang)
    return "\n".join([m.render(lang) for m in plan_lines(plan)] + [t("resume.press_button", lang)])


def build(ctx, texts: Texts, lang):
    texts.add(gr.Markdown, value=Msg("ui.runs.intro", root=f"`{ctx.store.root}`"), elem_classes="tab-intro")
    # Widths leave room for the message (it wraps); short headers never break inside a word (CSS).
    initial = runs_table(ctx.store)
    table = gr.Dataframe(initial, interactive=False, wrap=True, elem_id="runs-table",
                         column_widths=["15%", "8%", "6%", "6%", "7%", "7%", "6%", "6%", "8%", "6%", "9%", "16%"])
    # An empty table is only its headers: say so, and where runs come from. Shown and hidden by the
    # table's own change event, so every handler that redraws the table keeps it right.
    empty = texts.add(gr.Markdown, value="ui.runs.empty", elem_id="runs-empty", visible=initial.empty)
    table.change(lambda shown: gr.update(visible=not has_runs(shown)), table, empty,
                 api_visibility="private", show_progress="hidden", queue=False)
    refresh = texts.add(gr.Button, value="ui.runs.refresh", size="sm")
    seen = gr.State(())
    with gr.Row():
        chosen = texts.add(gr.Textbox, label="resume.run_label", info="resume.run_info", max_lines=1,
                           elem_id="resume-run", scale=2)
        resume = texts.add(gr.Button, value="resume.button", elem_id="resume-button", scale=1)
    # Text, not Markdown: the plan holds setting values and run ids, which are never rendered as HTML.
    resume_note = note_box(texts, "resume-note", "resume.note_label", lines=2)

    def pick(code, evt: gr.SelectData):
        row = evt.row_value or []
        if not row:
            return gr.skip(), gr.skip()
        return str(row[0]), resume_preview(ctx, str(row[0]), code)

    def on_resume(rid, code):
        return resume_run(ctx, rid, code), runs_table(ctx.store, code)

    table.select(pick, lang, [chosen, resume_note], api_visibility="private")
    resume.click(on_resume, [chosen, lang], [resume_note, table], api_visibility="private")

    def draw(code):
        return runs_table(ctx.store, code)

    # Below the table: chosen runs compared; one run exported, renamed or deleted.
    lists, list_inputs, list_outputs = runs_compare.build(ctx, texts, lang, table, draw)["lists"]

    def poll(previous, code, *chosen):
        """Redraw only when a run was added or changed state (a stat per run, no file reads)."""
        current = ctx.store.signature()
        if current == previous:
            return gr.skip(), previous, *(gr.skip() for _ in list_outputs)
        return runs_table(ctx.store, code), current, *lists(code, *chosen)

    def draw_all(code, *chosen):
        return runs_table(ctx.store, code), *lists(code, *chosen)

    refresh.click(draw_all, [lang] + list_inputs, [table] + list_outputs, api_visibility="private")
    texts.on_language(draw, lang, table)
    gr.Timer(3.0).tick(poll, [seen, lang] + list_inputs, [table, seen] + list_outputs, api_visibility="private",
                       show_progress="hidden", queue=False)
    return {"load": (draw_all, [lang] + list_inputs, [table] + list_outputs),
            "refresh": (draw_all, [lang] + list_inputs, [table] + list_outputs)}
