"""Train tab: the config form, Start/Stop, progress with ETA, live loss and learning-rate plots.

Handlers are thin: they turn form values into a `StudioConfig`, call the job manager, and
render what the run folder says. A 1 s `gr.Timer` asks the run for metrics appended since the
last byte offset it saw and redraws the plots only when something new arrived, so a reload or a
second tab shows the same state as the first.
"""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from studio.config import StudioConfig, load_recipe
from studio.paths import DEMO_RECIPE
from studio.errors import UserError, explain
from studio.ui.forms import build_fields, config_from_values, help_text

BASICS = ["model.path", "data.path", "method.method", "train.epochs", "train.learning_rate",
          "train.batch_size"]
GROUPS = {
    "Method details": ["method.lora_r", "method.lora_alpha", "method.lora_dropout", "method.lora_target",
                       "method.quant_bits", "method.freeze_layers"],
    "Data details": ["data.format", "data.val_size", "data.test_size", "data.max_samples",
                     "data.system_prompt"],
    "Training details": ["train.max_steps", "train.max_length", "train.grad_accum", "train.lr_scheduler",
                         "train.warmup", "train.weight_decay", "train.max_grad_norm", "train.loss_on",
                         "train.seed"],
    "Logging & checkpoints": ["train.eval_every", "train.log_every", "train.save_every", "name"],
    "Precision & memory": ["train.precision", "train.gradient_checkpointing", "model.trust_remote_code"],
}
KEYS = BASICS + [k for keys in GROUPS.values() for k in keys]
MODEL_CHOICES = ["demo", "HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"]
DATA_CHOICES = ["demo-en", "demo-zh"]
# Empty plots are None: a LinePlot that starts from an empty DataFrame never draws its colour
# series later (gradio 6.31), one that starts from None does.
EMPTY_LOSS = EMPTY_LR = None
LOSS_SERIES = {"loss": "train loss", "eval_loss": "eval loss"}


def _clock(seconds) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


def render_status(progress: dict | None, error: str = "") -> str:
    """The progress card: phase, bar, step/epoch/ETA, and any error in plain words."""
    if error:
        return f'<div class="status-card failed"><b>Could not start.</b> {html.escape(error)}</div>'
    if not progress:
        return ('<div class="status-card idle">Ready. The demo model and demo data are selected: '
                'press <b>Start training</b>.</div>')
    state, phase = progress["state"], progress["phase"]
    pct = int(round(progress["fraction"] * 100))
    epoch = f"{progress['epoch']:.2f}" if isinstance(progress.get("epoch"), (int, float)) else "–"
    steps = f"{progress['step']}/{progress['total_steps'] or '?'}"
    details = (f"step {steps} · epoch {epoch} · elapsed {_clock(progress['elapsed_s'])} · "
               f"ETA {_clock(progress['eta_s'])}")
    working = state in ("running", "stopping", "queued")
    title = {"loading model": "Loading the base model…", "preparing data": "Preparing the data…",
             "training": "Training…", "saving": "Saving the result…"}.get(phase, phase.capitalize()) if working else state.capitalize()
    message = "" if working and phase != "failed" else f'<div class="status-msg">{html.escape(progress["message"])}</div>'
    return (f'<div class="status-card {html.escape(state)}"><div class="status-title">{html.escape(title)}'
            f'</div><div class="bar"><div class="fill" style="width:{pct}%"></div></div>'
            f'<div class="status-details">{details}</div>{message}</div>')


STARTING = ('<div class="status-card running"><div class="status-title">Starting…</div>'
            '<div class="status-details">checking the settings and the model</div></div>')


def frames(events: list[dict]) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    loss_rows = []
    lr_rows = []
    for e in events:
        for key, series in LOSS_SERIES.items():
            if isinstance(e.get(key), (int, float)):
                loss_rows.append({"step": e["step"], "value": e[key], "series": series})
        if isinstance(e.get("learning_rate"), (int, float)):
            lr_rows.append({"step": e["step"], "learning_rate": e["learning_rate"]})
    if loss_rows:
        # gradio 6.31's LinePlot fixes its colour series at the first draw: a series that first
        # appears later (eval loss) is never drawn. A NaN placeholder (drawn as nothing) makes
        # both series known from the first point on.
        present = {row["series"] for row in loss_rows}
        loss_rows += [{"step": loss_rows[0]["step"], "value": float("nan"), "series": series}
                      for series in LOSS_SERIES.values() if series not in present]
    loss = pd.DataFrame(loss_rows) if loss_rows else EMPTY_LOSS
    lr = pd.DataFrame(lr_rows) if lr_rows else EMPTY_LR
    return loss, lr


def result_text(progress: dict | None) -> str:
    if not progress or progress["state"] not in ("completed", "stopped"):
        return ""
    where = progress.get("output") or "the run folder"
    verb = "finished" if progress["state"] == "completed" else "was stopped; what it learned so far is saved"
    return (f"### Training {verb}\nSaved to `{where}`.\n\n"
            "**Next:** score it on held-out prompts in **Evaluate**, talk to it in **Chat**, "
            "or put it next to the base model in **Chat → Compare**.")


def initial_config() -> StudioConfig:
    """The form starts from the demo recipe: demo model + demo data + settings that work on a CPU."""
    return load_recipe(DEMO_RECIPE) if DEMO_RECIPE.is_file() else StudioConfig()


def build(ctx, tabs: gr.Tabs):
    cfg = initial_config()
    gr.Markdown("Pick a base model, a dataset and a method, then start. Everything else has "
                "sensible defaults; open a section below to change it.", elem_classes="tab-intro")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=360):
            fields = build_fields(BASICS, cfg, **{
                "model.path": {"choices": MODEL_CHOICES, "allow_custom_value": True},
                "data.path": {"choices": DATA_CHOICES + ctx.uploaded_datasets(), "allow_custom_value": True},
            })
            for title, keys in GROUPS.items():
                with gr.Accordion(title, open=False):
                    fields.update(build_fields(keys, cfg))
        with gr.Column(scale=3, min_width=420):
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="start-btn", scale=2)
                stop = gr.Button("Stop", variant="stop", elem_id="stop-btn", interactive=False, scale=1)
            status = gr.HTML(render_status(None), elem_id="train-status")
            loss_plot = gr.LinePlot(EMPTY_LOSS, x="step", y="value", color="series", title="Loss",
                                    y_title="loss", height=260, elem_id="loss-plot",
                                    color_map={"train loss": "#2563eb", "eval loss": "#f97316"})
            lr_plot = gr.LinePlot(EMPTY_LR, x="step", y="learning_rate", title="Learning rate",
                                  height=200, elem_id="lr-plot")
            result = gr.Markdown("", elem_id="train-result")
            with gr.Row(visible=False) as next_steps:
                to_eval = gr.Button("Evaluate it", size="sm")
                to_chat = gr.Button("Chat with it", size="sm")
                to_compare = gr.Button("Compare with the base", size="sm")

    run_id = gr.State("")
    offset = gr.State(0)
    events = gr.State([])
    field_list = [fields[k] for k in KEYS]

    def field_updates(error_key: str | None = None, message: str = ""):
        return [gr.update(info=f"⚠ {message}" if key == error_key else help_text(key),
                          elem_classes=["field-error"] if key == error_key else [])
                for key in KEYS]

    def view(rid: str, off: int, evs: list, force: bool = False):
        """Read the run's new state; gr.skip() where nothing changed (cheap polling)."""
        run = ctx.jobs.active_run() or (ctx.store.get(rid) if rid and ctx.has_run(rid) else None)
        if run is None:
            run = ctx.store.latest()
        if run is None:
            return [gr.skip()] * 10 if not force else [
                "", 0, [], render_status(None), EMPTY_LOSS, EMPTY_LR, "", gr.update(visible=False),
                gr.update(interactive=True)] + [gr.update(interactive=False)]
        if run.id != rid:
            off, evs, force = 0, [], True
        new, off = run.read_metrics_from(off)
        progress = run.progress()
        working = progress["state"] in ("running", "stopping", "queued")
        evs = evs + new
        loss_df, lr_df = frames(evs) if (new or force) else (gr.skip(), gr.skip())
        done = progress["state"] in ("completed", "stopped")
        return [run.id, off, evs, render_status(progress), loss_df, lr_df, result_text(progress),
                gr.update(visible=done), gr.update(interactive=not working),
                gr.update(interactive=working and progress["state"] != "stopping")]

    poll_outputs = [run_id, offset, events, status, loss_plot, lr_plot, result, next_steps, start, stop]

    def on_start(*values):
        try:
            cfg = config_from_values(KEYS, values, base=initial_config())
            run = ctx.jobs.start(cfg)
        except Exception as exc:  # anything unexpected still becomes one line on the page
            key = exc.key if isinstance(exc, UserError) else None
            return ([gr.skip()] * 3 + [render_status(None, explain(exc))] + [gr.skip()] * 4
                    + [gr.update(interactive=True), gr.skip()] + field_updates(key, explain(exc)))
        progress = run.progress()
        return [run.id, 0, [], render_status(progress), EMPTY_LOSS, EMPTY_LR, "", gr.update(visible=False),
                gr.update(interactive=False), gr.update(interactive=True)] + field_updates()

    def on_stop(rid, off, evs):
        ctx.jobs.stop()
        return view(rid, off, evs)

    # Acknowledge the click at once (Start disabled, "Starting…"), then validate and start: the
    # model check may wait a few seconds for the training stack's import right after launch.
    start.click(lambda: (STARTING, gr.update(interactive=False)), None, [status, start],
                api_visibility="private", queue=False).then(
        on_start, field_list, poll_outputs + field_list, api_visibility="private",
        concurrency_limit=None)
    stop.click(on_stop, [run_id, offset, events], poll_outputs, api_visibility="private",
               concurrency_limit=None)
    timer = gr.Timer(1.0)
    timer.tick(view, [run_id, offset, events], poll_outputs, api_visibility="private",
               concurrency_limit=None, show_progress="hidden", queue=False)
    to_eval.click(lambda: gr.Tabs(selected="evaluate"), None, tabs, api_visibility="private")
    to_chat.click(lambda: gr.Tabs(selected="chat"), None, tabs, api_visibility="private")
    to_compare.click(lambda: gr.Tabs(selected="chat"), None, tabs, api_visibility="private")
    return {"fields": fields, "run_id": run_id, "to_chat": [to_chat, to_compare], "load": (lambda rid, off, evs: view(rid, off, evs, force=True),
                                       [run_id, offset, events], poll_outputs)}
