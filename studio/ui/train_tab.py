"""Train tab: the config form, a data check before Start, Start/Stop, progress with ETA, live plots.

Handlers are thin: they turn form values into a `StudioConfig`, call the job manager, and
render what the run folder says, in the page's language. A 1 s `gr.Timer` asks the run for
metrics appended since the last byte offset it saw and redraws the plots only when something new
arrived, so a reload or a second tab shows the same state as the first.

A refused Start is a *notice* (`gr.State`): the error card and the flags on every bad field stay
until the user edits a flagged field (or starts again); the timer leaves the card alone meanwhile,
so an older run's card never replaces the error. A bad field inside a closed section opens it.
"""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from studio import hub
from studio.config import StudioConfig, load_recipe, set_value
from studio.errors import explain
from studio.i18n import Msg, render, t
from studio.paths import DEMO_RECIPE
from studio.trackers import tracker_choices
from studio.ui.forms import build_fields, config_from_values, problems_of
from studio.ui.texts import Texts, field_info
from studio.ui import hub_panel, method_fields, sweep_panel, train_estimate
from studio.ui.train_diagnostics import render_diagnostics
from studio.ui.train_plots import reward_frame
from studio.ui.data_prepare import library_choices, mix_text

BASICS = ["model.path", "data.path", "method.stage", "method.method", "train.epochs", "train.learning_rate",
          "train.batch_size"]
GROUPS = {
    "ui.train.group.method": ["method.lora_r", "method.lora_alpha", "method.lora_dropout",
                              "method.lora_target", "method.quant_bits", "method.freeze_layers",
                              "method.num_virtual_tokens", "method.dpo_beta"],
    "ui.train.group.data": ["data.mix", "data.format", "data.val_size", "data.test_size", "data.max_samples",
                            "data.system_prompt"],
    "ui.train.group.training": ["train.max_steps", "train.max_length", "train.grad_accum",
                                "train.lr_scheduler", "train.warmup", "train.weight_decay",
                                "train.max_grad_norm", "train.loss_on", "train.neftune_alpha", "train.packing",
                                "train.seed"],
    "ui.train.group.logging": ["train.eval_every", "train.early_stopping_patience",
                               "train.early_stopping_threshold", "train.log_every", "train.save_every",
                               "train.save_total_limit", "train.report_to", "name"],
    "ui.train.group.precision": ["train.precision", "train.gradient_checkpointing", "train.processes",
                                 "train.distributed", "model.trust_remote_code"],
}
KEYS = BASICS + [k for keys in GROUPS.values() for k in keys]
# Installed trackers are offered; a typed list ("tensorboard,mlflow") or a recipe's uninstalled one
# reaches validation, which says how to install it (a fixed list would refuse it without a word).
GROUP_FIELDS = {"train.report_to": {"choices": tracker_choices(), "allow_custom_value": True}}
MODEL_CHOICES = [("demo", "demo")] + hub.model_choices()  # (label with size, value); free text allowed
DATA_CHOICES = ["demo-en", "demo-zh"]
# Empty plots are None: a LinePlot that starts from an empty DataFrame never draws its colour
# series later (gradio 6.31), one that starts from None does.
EMPTY_LOSS = EMPTY_LR = None
LOSS_SERIES = {"loss": "train loss", "eval_loss": "eval loss"}
PHASES = {"loading model": "ui.phase.loading_model", "preparing data": "ui.phase.preparing_data",
          "training": "ui.phase.training", "saving": "ui.phase.saving"}
WORKING = ("running", "stopping", "queued")


def _clock(seconds) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


def render_error(error, lang: str | None = None, problems: dict | None = None) -> str:
    """The card for a refused Start: the sentence (a Msg, or text), or one line per bad setting
    when there are several; never markup from the input."""
    title = html.escape(t("ui.status.could_not_start", lang))
    if problems and len(problems) > 1:
        items = "".join(f"<li>{html.escape(render(m, lang))}</li>" for m in problems.values())
        return f'<div class="status-card failed"><b>{title}</b><ul class="problems">{items}</ul></div>'
    return f'<div class="status-card failed"><b>{title}</b> {html.escape(render(error, lang))}</div>'


def render_notice(note: dict, lang: str | None = None) -> str:
    return render_error(note["message"], lang, note.get("problems"))


def render_status(progress: dict | None, error="", lang: str | None = None) -> str:
    """The progress card: phase, bar, step/epoch/ETA, and the run's message in plain words."""
    if error:
        return render_error(error, lang)
    if not progress:
        return f'<div class="status-card idle">{html.escape(t("ui.status.ready", lang))}</div>'
    state, phase = progress["state"], progress["phase"]
    pct = int(round(progress["fraction"] * 100))
    epoch = f"{progress['epoch']:.2f}" if isinstance(progress.get("epoch"), (int, float)) else "–"
    details = t("ui.status.details", lang, steps=f"{progress['step']}/{progress['total_steps'] or '?'}",
                epoch=epoch, elapsed=_clock(progress["elapsed_s"]), eta=_clock(progress["eta_s"]))
    working = state in WORKING
    if working:
        title = t(PHASES[phase], lang) if phase in PHASES else t("state.running", lang)
    else:
        title = t("state." + state if "state." + state in _STATES else "state.unknown", lang)
    message = "" if working else f'<div class="status-msg">{html.escape(render(progress["message"], lang))}</div>'
    return (f'<div class="status-card {html.escape(state)}"><div class="status-title">{html.escape(title)}'
            f'</div><div class="bar"><div class="fill" style="width:{pct}%"></div></div>'
            f'<div class="status-details">{html.escape(details)}</div>{message}</div>')


_STATES = {"state.queued", "state.running", "state.stopping", "state.stopped", "state.completed",
           "state.failed", "state.crashed"}


def render_starting(lang: str | None = None) -> str:
    return (f'<div class="status-card running"><div class="status-title">{html.escape(t("ui.status.starting", lang))}'
            f'</div><div class="status-details">{html.escape(t("ui.status.starting_detail", lang))}</div></div>')


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


def result_text(progress: dict | None, lang: str | None = None) -> str:
    if not progress or progress["state"] not in ("completed", "stopped"):
        return ""
    where = progress.get("output") or t("ui.result.run_folder", lang)
    title = t("ui.result.finished" if progress["state"] == "completed" else "ui.result.stopped", lang)
    return (f"### {title}\n{t('ui.result.saved_to', lang, where=f'`{where}`')}\n\n"
            f"{t('ui.result.next', lang)}")


def data_check_text(report: dict | None, plan: dict | None, lang: str | None = None, error=None) -> str:
    """The line under the dataset field: what will happen to the data, and the device plan."""
    if error is not None:
        return f"⚠ {render(error, lang)}"
    lines = []
    if report:
        summary = report.get("summary")
        lines.append(render(summary, lang) if summary else t(
            "ui.train.data_check", lang, rows=report.get("rows", "?"), usable=report.get("usable", "?"),
            format=report.get("format", "?")))
    chosen = (plan or {}).get("summary") or (plan or {}).get("reason")  # precision, checkpointing, threads
    if chosen:
        lines.append(render(chosen, lang))
    return "\n\n".join(lines)


def check_data(cfg: StudioConfig) -> tuple[dict | None, dict | None]:
    """The data engineer's check and the device plan, for the form's current settings."""
    from studio import data, estimate

    report = data.check_training_data(cfg)
    plan = None
    try:
        plan = estimate.device_plan_for(cfg)
    except Exception:  # a precision problem is flagged by Start, next to its field
        plan = None
    return report, plan


def initial_config() -> StudioConfig:
    """The form starts from the demo recipe: demo model + demo data + settings that work on a CPU.
    The name is left empty so each run is named after its data and method."""
    cfg = load_recipe(DEMO_RECIPE) if DEMO_RECIPE.is_file() else StudioConfig()
    return set_value(cfg, "name", "")


def dataset_choices(ctx) -> list[tuple[str, str]]:
    """Bundled sets, uploads (shown by file name, the value is the path) and library datasets
    (shown by name, the value is library:<id>)."""
    from pathlib import Path

    return ([(name, name) for name in DATA_CHOICES] + [(Path(p).name, p) for p in ctx.uploaded_datasets()]
            + library_choices(ctx))


def build(ctx, tabs: gr.Tabs, texts: Texts, lang: gr.components.Component):
    cfg = initial_config()
    texts.add(gr.Markdown, value="ui.train.intro", elem_classes="tab-intro")
    accordions = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=360):
            fields = build_fields(BASICS, cfg, texts, **{
                "model.path": {"choices": MODEL_CHOICES, "allow_custom_value": True},
                "data.path": {"choices": dataset_choices(ctx), "allow_custom_value": True},
            })
            data_check = gr.Markdown("", elem_id="data-check", elem_classes="field-note")
            estimate_note = gr.Markdown("", elem_id="train-estimate", elem_classes="field-note")
            hub_panel.build(ctx, texts, fields, lang)  # Hub status, curated models, the token
            for title, keys in GROUPS.items():
                with texts.add(gr.Accordion, label=title, open=False, elem_id="group-" + title.split(".")[-1]) as box:
                    if title == "ui.train.group.data":  # several library datasets, each with a share
                        mix_pick = texts.add(gr.Dropdown, label="dataui.mix.label", info="dataui.mix.help",
                                             choices=library_choices(ctx), value=[], multiselect=True,
                                             elem_id="data-mix-pick")
                    fields.update(build_fields(keys, cfg, texts, **GROUP_FIELDS))
                accordions[title] = box
        with gr.Column(scale=3, min_width=420):
            with gr.Row():
                start = texts.add(gr.Button, value="ui.train.start", variant="primary", elem_id="start-btn", scale=2)
                stop = texts.add(gr.Button, value="ui.train.stop", variant="stop", elem_id="stop-btn",
                                 interactive=False, scale=1)
            status = gr.HTML(render_status(None), elem_id="train-status")
            diagnostics = gr.HTML("", elem_id="train-diagnostics")
            loss_plot = gr.LinePlot(EMPTY_LOSS, x="step", y="value", color="series", title="Loss",
                                    y_title="loss", height=260, elem_id="loss-plot",
                                    color_map={"train loss": "#2563eb", "eval loss": "#f97316"})
            lr_plot = gr.LinePlot(EMPTY_LR, x="step", y="learning_rate", title="Learning rate",
                                  height=200, elem_id="lr-plot")
            reward_plot = gr.LinePlot(None, x="step", y="value", color="series", title="Rewards",
                                      height=240, elem_id="reward-plot", visible=False)
            texts.register(loss_plot, title="ui.train.loss_title")
            texts.register(lr_plot, title="ui.train.lr_title")
            texts.register(reward_plot, title="dpo.plot_title")
            result = gr.Markdown("", elem_id="train-result")
            with gr.Row(visible=False) as next_steps:
                to_eval = texts.add(gr.Button, value="evaluate.to_eval", size="sm", elem_id="to-eval")
                to_chat = texts.add(gr.Button, value="ui.train.to_chat", size="sm", elem_id="to-chat")
                to_compare = texts.add(gr.Button, value="chatui.to_compare", size="sm", elem_id="to-compare")
            sweep_panel.build(ctx, texts, fields, lang)  # quick sweep; "Use the best" writes into `fields`

    run_id = gr.State("")
    offset = gr.State(0)
    events = gr.State([])
    # None, "starting", or {"message": Msg dict, "problems": {key: Msg dict}}: a refused Start
    # stays on screen until the user edits a flagged field.
    notice = gr.State(None)
    field_list = [fields[k] for k in KEYS]
    box_list = list(accordions.values())
    # each method shows only its own settings
    method_fields.wire(fields, accordions["ui.train.group.method"], cfg.method.method, cfg.method.stage)

    def field_updates(lang_code: str, problems: dict) -> list:
        return [gr.update(info=field_info(key, lang_code, problems),
                          elem_classes=["field-error"] if key in problems else [])
                for key in KEYS]

    def view(rid: str, off: int, evs: list, note, lang_code: str, force: bool = False):
        """Read the run's new state; gr.skip() where nothing changed (cheap polling)."""
        run = ctx.jobs.active_run() or (ctx.store.get(rid) if rid and ctx.has_run(rid) else None)
        if run is None:
            run = ctx.store.latest()
        shown = gr.skip() if note else None  # a notice on screen is not replaced by a run card
        if run is None:
            return [gr.skip()] * 12 if not force else [
                "", 0, [], shown or render_status(None, lang=lang_code), EMPTY_LOSS, EMPTY_LR, "",
                gr.update(visible=False), gr.update(interactive=True), gr.update(interactive=False),
                "", gr.update(value=None, visible=False)]
        # A resumed run's metrics.jsonl was cut back to its checkpoint (studio.resume): start over.
        if run.id != rid or off > (run.metrics_path.stat().st_size if run.metrics_path.exists() else 0):
            off, evs, force = 0, [], True
        new, off = run.read_metrics_from(off)
        progress = run.progress()
        working = progress["state"] in WORKING
        if not working:
            progress["message"] = run.message(lang_code)
        evs = evs + new
        loss_df, lr_df = frames(evs) if (new or force) else (gr.skip(), gr.skip())
        rewards = gr.skip()
        if new or force:
            reward_df = reward_frame(evs, lang_code)
            rewards = gr.update(value=reward_df, visible=reward_df is not None)
        done = progress["state"] in ("completed", "stopped")
        return [run.id, off, evs, shown or render_status(progress, lang=lang_code), loss_df, lr_df,
                result_text(progress, lang_code), gr.update(visible=done),
                gr.update(interactive=not working),
                gr.update(interactive=working and progress["state"] != "stopping"),
                render_diagnostics(run, lang_code), rewards]

    poll_inputs = [run_id, offset, events, notice, lang]
    poll_outputs = [run_id, offset, events, status, loss_plot, lr_plot, result, next_steps, start, stop,
                    diagnostics, reward_plot]

    def on_start(lang_code, *values):
        try:
            cfg = config_from_values(KEYS, values, base=initial_config())
            run = ctx.start(cfg)
        except Exception as exc:  # anything unexpected still becomes one sentence on the page
            problems = problems_of(exc)
            note = {"message": explain(exc).to_dict(),
                    "problems": {k: m.to_dict() for k, m in problems.items()}}
            opened = [gr.update(open=True) if set(keys) & set(problems) else gr.skip()
                      for keys in GROUPS.values()]
            return ([gr.skip()] * 3 + [render_notice(note, lang_code)] + [gr.skip()] * 4
                    + [gr.update(interactive=True)] + [gr.skip()] * 3 + [note]
                    + field_updates(lang_code, problems) + opened)
        progress = run.progress()
        return ([run.id, 0, [], render_status(progress, lang=lang_code), EMPTY_LOSS, EMPTY_LR, "",
                 gr.update(visible=False), gr.update(interactive=False), gr.update(interactive=True), "",
                 gr.update(value=None, visible=False), None]
                + field_updates(lang_code, {}) + [gr.skip()] * len(box_list))

    def on_stop(rid, off, evs, note, lang_code):
        ctx.jobs.stop()
        return view(rid, off, evs, note, lang_code)

    def on_edit(key: str):
        """The user changed a flagged field: unflag it; the notice goes when none is left."""
        def clear(note, lang_code):
            if not isinstance(note, dict) or (note["problems"] and key not in note["problems"]):
                return gr.skip(), gr.skip(), gr.skip()
            problems = {k: m for k, m in note["problems"].items() if k != key}
            field = gr.update(info=field_info(key, lang_code), elem_classes=[])
            if problems:
                note = {**note, "problems": problems}
                return field, note, render_notice(note, lang_code)
            return field, None, current_card(lang_code)
        return clear

    def current_card(lang_code: str) -> str:
        run = ctx.jobs.active_run() or ctx.store.latest()
        if run is None:
            return render_status(None, lang=lang_code)
        progress = run.progress()
        progress["message"] = run.message(lang_code)
        return render_status(progress, lang=lang_code)

    # Acknowledge the click at once (Start disabled, "Starting…"), then validate and start: the
    # model check may take a few seconds. Spinners stay off the form: the card shows progress.
    start.click(lambda lang_code: (render_starting(lang_code), gr.update(interactive=False), "starting"),
                lang, [status, start, notice], api_visibility="private", queue=False,
                show_progress="hidden").then(
        on_start, [lang] + field_list, poll_outputs + [notice] + field_list + box_list,
        api_visibility="private", concurrency_limit=None, show_progress="hidden")
    stop.click(on_stop, poll_inputs, poll_outputs, api_visibility="private",
               concurrency_limit=None, show_progress="hidden")
    for key, component in fields.items():
        # .change, not .input: typing, pasting and "Use this dataset" all count as an edit.
        component.change(on_edit(key), [notice, lang], [component, notice, status],
                        api_visibility="private", queue=False, show_progress="hidden")
    timer = gr.Timer(1.0)
    timer.tick(view, poll_inputs, poll_outputs, api_visibility="private",
               concurrency_limit=None, show_progress="hidden", queue=False)

    def on_data_change(model, data, max_length, lang_code):
        try:
            cfg = initial_config()
            for key, value in (("model.path", model), ("data.path", data), ("train.max_length", max_length)):
                cfg = set_value(cfg, key, value)
            ctx.resolve_user_path(cfg.model.path, "model")  # paths from the page are checked first
            ctx.resolve_user_path(cfg.data.path, "data")
            report, plan = check_data(cfg)
        except Exception as exc:  # shown as a sentence under the dataset; Start will flag it too
            return data_check_text(None, None, lang_code, explain(exc))
        return data_check_text(report, plan, lang_code)

    check_inputs = [fields["model.path"], fields["data.path"], fields["train.max_length"], lang]
    gr.on([fields["model.path"].change, fields["data.path"].change, fields["train.max_length"].blur,
           fields["train.max_length"].submit],
          on_data_change, check_inputs, data_check, api_visibility="private", show_progress="hidden",
          trigger_mode="always_last")
    texts.on_language(on_data_change, check_inputs, data_check, slow=True)

    estimate_hook = train_estimate.wire(ctx, initial_config, fields, texts, lang, estimate_note)

    def on_language(rid, off, evs, note, lang_code):
        """Re-render what handlers wrote (card, result) in the new language; field labels and
        help (or the problem shown in their place) are the text registry's job."""
        outputs = view(rid, off, evs, note, lang_code, force=True)
        if isinstance(note, dict):
            outputs[3] = render_notice(note, lang_code)
        return outputs

    texts.on_language(on_language, poll_inputs, poll_outputs)
    to_chat.click(lambda: gr.Tabs(selected="chat"), None, tabs, api_visibility="private")
    mix_pick.focus(lambda: gr.update(choices=library_choices(ctx)), None, mix_pick, api_visibility="private",
                   queue=False, show_progress="hidden")
    mix_pick.input(mix_text, [mix_pick, fields["data.mix"]], fields["data.mix"], api_visibility="private",
                   queue=False, show_progress="hidden")

    def on_load(rid, off, evs, note, lang_code):
        return view(rid, off, evs, note, lang_code, force=True) + [
            gr.update(choices=dataset_choices(ctx))]

    return {"fields": fields, "run_id": run_id, "to_chat": [to_chat], "to_eval": [to_eval], "to_compare": [to_compare],
            "notice": notice,
            "dataset_choices": lambda: dataset_choices(ctx),
            "load": (on_load, poll_inputs, poll_outputs + [fields["data.path"]]),
            "data_check": (on_data_change, check_inputs, data_check), "estimate": estimate_hook}
