"""Runs tab: every run in the studio home with state, method, data, final loss and duration.

The table is drawn in the page's language (headers, states, each run's status message from
status.json's code + parameters), so a run started in English reads in Chinese after a switch.
"""

from __future__ import annotations

import os
import time

import gradio as gr
import pandas as pd

from studio.evaluate import latest_summary
from studio.i18n import Msg, t
from studio.ui.texts import Texts

COLUMNS = ["run", "state", "method", "model", "data", "steps", "final_loss", "eval", "time", "started", "message"]


def runs_table(store, lang: str | None = None) -> pd.DataFrame:
    rows = []
    for run in store.all():
        r = run.summary()
        state = r["state"] if r["state"] in ("queued", "running", "stopping", "stopped", "completed",
                                             "failed", "crashed") else "unknown"
        rows.append([
            r["id"], t("state." + state, lang), r["method"],
            os.path.basename(r["model"].rstrip("/")) if r["model"].startswith("/") else r["model"],
            os.path.basename(r["data"]),
            f"{r['step']}/{r['total_steps']}" if r["total_steps"] else str(r["step"]),
            round(r["final_loss"], 4) if isinstance(r["final_loss"], float) else None,
            latest_summary(run, lang),  # the newest evaluation: ROUGE-L base → fine-tuned
            f"{r['seconds']:.0f} s" if r["seconds"] else "",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])) if r["created_at"] else "",
            run.message(lang),
        ])
    return pd.DataFrame(rows, columns=[t("ui.runs.col." + c, lang) for c in COLUMNS])


def build(ctx, texts: Texts, lang):
    texts.add(gr.Markdown, value=Msg("ui.runs.intro", root=f"`{ctx.store.root}`"), elem_classes="tab-intro")
    # Widths leave room for the message (it wraps); short headers never break inside a word (CSS).
    table = gr.Dataframe(runs_table(ctx.store), interactive=False, wrap=True, elem_id="runs-table",
                         column_widths=["17%", "7%", "6%", "7%", "7%", "7%", "6%", "9%", "6%", "10%", "18%"])
    refresh = texts.add(gr.Button, value="ui.runs.refresh", size="sm")
    seen = gr.State(())

    def poll(previous, code):
        """Redraw only when a run was added or changed state (a stat per run, no file reads)."""
        current = ctx.store.signature()
        if current == previous:
            return gr.skip(), previous
        return runs_table(ctx.store, code), current

    def draw(code):
        return runs_table(ctx.store, code)

    refresh.click(draw, lang, table, api_visibility="private")
    lang.change(draw, lang, table, api_visibility="private", show_progress="hidden")
    gr.Timer(3.0).tick(poll, [seen, lang], [table, seen], api_visibility="private",
                       show_progress="hidden", queue=False)
    return {"load": (draw, [lang], [table]), "refresh": (draw, [lang], table)}
