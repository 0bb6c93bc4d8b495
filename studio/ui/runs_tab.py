"""Runs tab: every run in the studio home with state, method, data, final loss and duration."""

from __future__ import annotations

import os
import time

import gradio as gr
import pandas as pd

COLUMNS = ["run", "state", "method", "model", "data", "steps", "final loss", "time", "started", "message"]


def runs_table(store) -> pd.DataFrame:
    rows = []
    for r in store.list():
        rows.append({
            "run": r["id"], "state": r["state"], "method": r["method"],
            "model": os.path.basename(r["model"].rstrip("/")) if r["model"].startswith("/") else r["model"],
            "data": os.path.basename(r["data"]),
            "steps": f"{r['step']}/{r['total_steps']}" if r["total_steps"] else str(r["step"]),
            "final loss": round(r["final_loss"], 4) if isinstance(r["final_loss"], float) else None,
            "time": f"{r['seconds']:.0f} s" if r["seconds"] else "",
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])) if r["created_at"] else "",
            "message": r["message"],
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def build(ctx):
    gr.Markdown("All runs in the studio home, newest first. The run folder on disk is the source "
                f"of truth: `{ctx.store.root}`", elem_classes="tab-intro")
    table = gr.Dataframe(runs_table(ctx.store), interactive=False, wrap=True, elem_id="runs-table")
    refresh = gr.Button("Refresh", size="sm")
    seen = gr.State(())

    def poll(previous):
        """Redraw only when a run was added or changed state (a stat per run, no file reads)."""
        current = ctx.store.signature()
        if current == previous:
            return gr.skip(), previous
        return runs_table(ctx.store), current

    refresh.click(lambda: runs_table(ctx.store), None, table, api_visibility="private")
    gr.Timer(3.0).tick(poll, seen, [table, seen], api_visibility="private",
                       show_progress="hidden", queue=False)
    return {"load": (lambda: runs_table(ctx.store), [], [table]),
            "refresh": (lambda: runs_table(ctx.store), table)}
