"""The studio's Gradio app: tabs Data · Train · Evaluate · Chat · Runs, plus a small HTTP API.

    from studio.ui.app import build_app, launch
    demo = build_app(Workspace(home)); demo.launch()
    launch(home, host="127.0.0.1", port=7860)       # what `studio` runs

One module per tab builds its components from the shared `Workspace`. Internal listeners are
hidden from the API; the public endpoints (`/start_run`, `/stop_run`, `/run_status`,
`/run_metrics`, `/list_runs`) let scripts and `gradio_client` drive the same job manager.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from studio.errors import explain
from studio.ui import chat_tab, data_tab, runs_tab, train_tab
from studio.jobs import warm_up
from studio.workspace import Workspace

CSS = (Path(__file__).resolve().parents[2] / "assets" / "studio.css")


def add_api(ws: Workspace) -> None:
    def start_run(overrides: list[str]) -> dict:
        """Start training with key=value overrides (e.g. ["max_steps=20"]); returns the run id."""
        try:
            run = ws.start(overrides)
        except Exception as exc:  # one plain line for the caller, whatever went wrong
            raise gr.Error(explain(exc)) from None
        return {"run_id": run.id, "folder": str(run.path)}  # not "path": clients read that as a file

    def stop_run() -> dict:
        """Stop the active run after its current step; it is saved and marked 'stopped'."""
        run = ws.jobs.stop()
        return {"run_id": run.id if run else None}

    def run_status(run_id: str) -> dict:
        """Progress of one run: state, phase, step, total_steps, ETA, message."""
        try:
            return ws.store.get(run_id).progress()
        except KeyError:
            raise gr.Error(f"No run called '{run_id}'.") from None

    def run_metrics(run_id: str, since_step: int = -1) -> list[dict]:
        """Metric events (train loss, eval loss, learning rate, …) with step > since_step."""
        try:
            run = ws.store.get(run_id)
        except KeyError:
            raise gr.Error(f"No run called '{run_id}'.") from None
        return [e for e in run.read_metrics() if e.get("step", 0) > since_step]

    def list_runs() -> list[dict]:
        """Every run, newest first."""
        return ws.store.list()

    for fn in (start_run, stop_run, run_status, run_metrics, list_runs):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)


def build_app(ws: Workspace) -> gr.Blocks:
    with gr.Blocks(title="Finetune Studio") as demo:
        with gr.Row(elem_classes="studio-header"):
            gr.Markdown("# Finetune Studio\nFine-tune a language model in your browser: data → "
                        "train → evaluate → chat.")
        with gr.Tabs(selected="train") as tabs:
            with gr.Tab("Data", id="data"):
                data_slot = gr.Column()
            with gr.Tab("Train", id="train"):
                train = train_tab.build(ws, tabs)
            with gr.Tab("Evaluate", id="evaluate"):
                gr.Markdown("Scoring with ROUGE and BLEU on the held-out test split (saved with "
                            "each run under `data/test.jsonl`) arrives in the next release.",
                            elem_classes="tab-intro")
            with gr.Tab("Chat", id="chat"):
                chat = chat_tab.build(ws)
            with gr.Tab("Runs", id="runs") as runs_page:
                runs = runs_tab.build(ws)
        with data_slot:
            data = data_tab.build(ws, train["fields"])
        refresh_runs, runs_table = runs["refresh"]
        runs_page.select(refresh_runs, None, runs_table, api_visibility="private")
        select_run, chat_source = chat["select_run"]
        for button in train["to_chat"]:
            button.click(select_run, train["run_id"], chat_source, api_visibility="private")
        for part in (train, runs, data, chat):
            fn, inputs, outputs = part["load"]
            demo.load(fn, inputs, outputs, api_visibility="private")
        add_api(ws)
    return demo


def launch(home: Path, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           prevent_thread_lock: bool = False):
    ws = Workspace(home)
    demo = build_app(ws)
    warm_up()
    demo.queue(default_concurrency_limit=4)
    return demo.launch(server_name=host, server_port=port, share=share, css_paths=[CSS],
                       theme=gr.themes.Soft(primary_hue="indigo"), inbrowser=False,
                       prevent_thread_lock=prevent_thread_lock, footer_links=["api"])
