"""Runs tab, lower half: chosen runs compared, and one run exported, renamed or deleted.

    lists, inputs, outputs = runs_compare.build(ctx, texts, lang, table, draw)["lists"]   # in runs_tab.build
    lists(lang, chosen, target)   # both run lists redrawn when runs change (load, refresh, timer)

Compare: a multiselect of runs; their train and eval loss drawn over each other (one colour per
run: train loss dark, eval loss light), the settings that differ (one column per run) and their
scores, where their tracker runs live (runs/<id>/trackers.json) and A/B win rates
(studio.compare; in demo mode only votes on the visitor's own runs count). Manage: one run's
recipe as YAML, the exact `studio train` command and a .yaml file (saved under
`<home>/exports/recipes/`); a label (the id and folder stay); Delete arms on the first click
("Confirm delete of RUN") and deletes on the second, for the same run. Results and refusals
stay next to the buttons and follow the language switch. Every handler takes ids from the
client and lets studio.compare check them.
"""

from __future__ import annotations

import shutil
import tempfile

import gradio as gr
import pandas as pd

from studio import compare
from studio.config import field_label
from studio.errors import UserError, explain
from studio.i18n import Msg, render, t
from studio.ui.forms import note_box

# (train loss, eval loss) colour of the 1st, 2nd, … chosen run: one hue per run.
PALETTE = [("#4338ca", "#a5b4fc"), ("#b91c1c", "#fca5a5"), ("#047857", "#6ee7b7"), ("#b45309", "#fcd34d"),
           ("#6d28d9", "#c4b5fd"), ("#0e7490", "#67e8f9"), ("#be185d", "#f9a8d4"), ("#374151", "#d1d5db")]
SERIES_NAMES = {"loss": "train.metric_loss", "eval_loss": "train.metric_eval_loss"}
METRIC_NAMES = {"rouge1": "scores.metric.rouge1", "rouge2": "scores.metric.rouge2", "rougeL": "scores.metric.rouge_l",
                "bleu": "scores.metric.bleu", "eval_loss": "scores.metric.eval_loss",
                "perplexity": "scores.metric.perplexity"}


def run_choices(ctx, lang: str | None = None) -> list[tuple[str, str]]:
    """(what the list shows, run id) for every run, newest first: id, state and label."""
    choices = []
    for run in ctx.store.all():
        state = run.status().get("state", "unknown")
        label = compare.run_label(run)
        shown = f"{run.id} · {t('state.' + state, lang)}" + (f" · {label}" if label else "")
        choices.append((shown, run.id))
    return choices


def _num(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def plot_frame(runs, names, lang) -> tuple[pd.DataFrame | None, dict | None]:
    """The overlay plot's long-form rows (step, value, line) and the colour of every line."""
    colours, rows = {}, []
    for i, run in enumerate(runs):
        for series, colour in zip(("loss", "eval_loss"), PALETTE[i % len(PALETTE)]):
            colours[f"{names[run.id]} · {t(SERIES_NAMES[series], lang)}"] = colour
    for row in compare.curve_rows(runs, names):
        rows.append({"step": row["step"], "value": row["value"],
                     "line": f"{row['run']} · {t(SERIES_NAMES[row['series']], lang)}"})
    if not rows:
        return None, None
    return pd.DataFrame(rows, columns=["step", "value", "line"]), colours


def config_frame(runs, names, lang) -> pd.DataFrame:
    columns = [t("compare.col_setting", lang)] + [names[run.id] for run in runs]
    rows = [[f"{field_label(row['setting']).render(lang)} ({row['setting']})"]
            + ["-" if v is None else repr(v) if v == "" else str(v) for v in row["values"]]
            for row in compare.config_diff(runs)]
    if not rows and len(runs) >= 2:  # one run has nothing to differ from
        rows = [[t("compare.ui.same_config", lang)] + [""] * len(runs)]
    return pd.DataFrame(rows, columns=columns)


def results_frame(ctx, runs, names, lang) -> pd.DataFrame:
    """Final losses, the newest test-set scores (fine-tuned, with the base in brackets) and the
    A/B votes of each run, one column per run."""
    finals = [compare.final_losses(run) for run in runs]
    rows = [[t("compare.row_final_loss", lang)] + [_num(f["loss"]) for f in finals],
            [t("compare.row_final_eval_loss", lang)] + [_num(f["eval_loss"]) for f in finals]]
    scores = compare.score_rows(runs)
    if scores:
        first = scores[0]["values"]
        rows.append([t("compare.row_eval_data", lang)] + [cell["data"] if cell else "-" for cell in first])
    for row in scores:
        rows.append([t(METRIC_NAMES.get(row["metric"], row["metric"]), lang)]
                    + ["-" if cell is None else t("compare.cell_score", lang, tuned=_num(cell["tuned"], 3),
                                                  base=_num(cell["base"], 3)) for cell in row["values"]])
    trackers = [tracker_text(run) for run in runs]
    if any(trackers):  # where each run's tracker run lives (runs/<id>/trackers.json), as text
        rows.append([t("followups.row_trackers", lang)] + [text or "-" for text in trackers])
    votes = compare.vote_rows(ctx.home, runs, ctx.store)
    if any(v["votes"] for v in votes):
        rows.append([t("compare.row_votes", lang)] + [t("compare.cell_votes", lang, wins=v["wins"], votes=v["votes"])
                                                       for v in votes])
        rows.append([t("compare.row_win_rate", lang)]
                    + ["-" if v["win_rate"] is None else f"{v['win_rate']:.0%}" for v in votes])
        for other in runs:
            if any(other.id in v["head_to_head"] for v in votes):
                rows.append([t("compare.row_head_to_head", lang, run=names[other.id])]
                            + [_h2h(v["head_to_head"].get(other.id), lang) for v in votes])
    columns = [t("compare.ui.col_what", lang)] + [names[run.id] for run in runs]
    return pd.DataFrame(rows, columns=columns)


def tracker_text(run) -> str:
    """Where the run's tracker runs live, one 'name: location' per tracker ('' when it reported
    to none): a Dataframe cell, so it shows as text."""
    from studio.runs import one_line
    from studio.trackers import read_records

    return "; ".join(one_line(f"{r['name']}: {r.get('location', '')}") for r in read_records(run))


def _h2h(pair, lang) -> str:
    return "-" if not pair else t("compare.cell_votes", lang, wins=pair["wins"], votes=pair["votes"])


def chosen_runs(ctx, run_ids, lang):
    """(runs, note): the chosen runs that exist (a deleted one is dropped), or why none are shown."""
    try:
        runs = compare.pick_runs(ctx.store, [rid for rid in run_ids or [] if ctx.has_run(rid)])
    except UserError as exc:
        return [], exc.render(lang)
    return runs, "" if len(runs) >= 2 else t("compare.ui.pick_two", lang)


def compare_view(ctx, run_ids, lang):
    """(settings table, results table, note) for the chosen runs; the note says what is missing."""
    runs, note = chosen_runs(ctx, run_ids, lang)
    if not runs:  # no empty tables with placeholder headers: they come when there is something to show
        return gr.update(value=pd.DataFrame(), visible=False), gr.update(value=pd.DataFrame(), visible=False), note
    names = compare.display_names(runs)
    results = results_frame(ctx, runs, names, lang)
    voted = any(v["votes"] for v in compare.vote_rows(ctx.home, runs, ctx.store))
    if len(runs) >= 2 and not compare.score_rows(runs) and not voted:
        note = t("compare.ui.no_results", lang)
    return (gr.update(value=config_frame(runs, names, lang), visible=True),
            gr.update(value=results, visible=True), note)


def export_files(ctx, run_id: str) -> tuple[str, str, str, str]:
    """(YAML, command, file to download, saved path): the recipe saved under
    `<home>/exports/recipes/`; Gradio serves downloads only from its temp area, so a copy goes
    there (the file in the home is the one the command names)."""
    run = compare.get_run(ctx.store, run_id)
    path, text, command = compare.write_recipe(run, ctx.home / "exports" / "recipes", home=ctx.home)
    download = shutil.copy(path, tempfile.mkdtemp(prefix="studio-recipe-"))
    return text, command, download, str(path)


def build(ctx, texts, lang, table, redraw_table) -> dict:
    """The compare and manage sections below the Runs table (`table`, drawn by
    `redraw_table(lang)`: a rename or delete changes it). Returns {"lists": (fn, inputs,
    outputs)}: the run lists redrawn when runs change (the tab's load, refresh and timer)."""
    texts.add(gr.Markdown, value="compare.ui.title", elem_classes="section-title")
    texts.add(gr.Markdown, value="compare.ui.intro", elem_classes="tab-intro")
    # Both run lists take any value at Gradio's door (allow_custom_value): a run deleted while chosen
    # would otherwise fail every later event that reads the list, the timer's redraw that unchooses
    # it included (Gradio checks values against the choices before a handler runs). The handlers
    # check ids themselves (compare.get_run / chosen_runs).
    picker = texts.add(gr.Dropdown, choices=lambda code: run_choices(ctx, code), multiselect=True,
                       allow_custom_value=True, max_choices=compare.MAX_RUNS, label="compare.ui.runs", info="compare.ui.runs_help",
                       elem_id="compare-runs")
    note = note_box(texts, "compare-note", "compare.ui.note_label", max_lines=2)
    plot_key = gr.State(0)  # bumped when the runs' names change (a rename): the plot is drawn again

    # A new plot for every choice: gradio 6.31's LinePlot fixes its colour domain at its first
    # draw, so a run added to a drawn plot would never get its lines.
    @gr.render(inputs=[picker, lang, plot_key], triggers=[picker.change, lang.change, plot_key.change],
               show_progress="hidden")
    def draw_plot(chosen, code, _key):
        runs, _ = chosen_runs(ctx, chosen, code)
        if not runs:
            return  # nothing chosen: no empty plot frame
        frame, colours = plot_frame(runs, compare.display_names(runs), code)
        gr.LinePlot(frame, x="step", y="value", color="line", color_map=colours, title=t("compare.ui.plot", code),
                    x_title=t("compare.ui.x_step", code), y_title=t("compare.ui.y_loss", code), color_title=" ",
                    height=320, elem_id="compare-plot")

    with gr.Row():
        settings = texts.add(gr.Dataframe, label="compare.ui.config", interactive=False, wrap=True,
                             elem_id="compare-config", scale=1, visible=False)
        results = texts.add(gr.Dataframe, label="compare.ui.results", interactive=False, wrap=True,
                            elem_id="compare-results", scale=1, visible=False)

    with texts.add(gr.Accordion, label="compare.ui.manage", open=True, elem_id="compare-manage"):
        with gr.Row():
            target = texts.add(gr.Dropdown, choices=lambda code: run_choices(ctx, code), value=None,
                               allow_custom_value=True,
                               label="compare.ui.target", info="compare.ui.target_help", elem_id="compare-target",
                               scale=3)
            label = texts.add(gr.Textbox, label="compare.ui.label", info="compare.ui.label_help", max_lines=1,
                              elem_id="compare-label", scale=2)
        with gr.Row():
            export = texts.add(gr.Button, value="compare.ui.export", elem_id="compare-export", size="sm")
            rename = texts.add(gr.Button, value="compare.ui.rename", elem_id="compare-rename", size="sm")
            delete = texts.add(gr.Button, value="compare.ui.delete", variant="stop", elem_id="compare-delete",
                               size="sm")
        # Plain text, never Markdown: it holds run ids, labels and paths.
        manage_note = note_box(texts, "compare-manage-note", "compare.ui.manage_note_label", max_lines=3)
        with gr.Row(visible=False) as exported:  # shown by the first export
            recipe = texts.add(gr.Code, language="yaml", label="compare.ui.recipe", interactive=False, lines=8,
                               max_lines=24, elem_id="compare-recipe", scale=3)
            with gr.Column(scale=2):
                command = texts.add(gr.Textbox, label="compare.ui.command", interactive=False, max_lines=2,
                                    buttons=["copy"], elem_id="compare-command")
                recipe_file = texts.add(gr.File, label="compare.ui.recipe_file", interactive=False,
                                        elem_id="compare-recipe-file")
    armed = gr.State("")  # the run the next Delete click removes ('' = not armed)
    said = gr.State(None)  # the manage note as code + parameters, redrawn on a language switch
    view = [settings, results, note]
    private = {"api_visibility": "private"}

    def lists(code, chosen, chosen_target):
        """Both run lists with fresh choices; a chosen run that is gone is unchosen (the values are
        sent only then, so a redraw while a run trains does not fight the user's clicks)."""
        choices = run_choices(ctx, code)
        known = {value for _, value in choices}
        kept = [rid for rid in chosen or [] if rid in known]
        picked = gr.update(choices=choices, **({"value": kept} if kept != list(chosen or []) else {}))
        gone = chosen_target and chosen_target not in known
        return picked, gr.update(choices=choices, **({"value": None} if gone else {}))

    def said_now(msg: Msg, code):
        return render(msg, code), msg.to_dict()

    def show(chosen, target_id, code):
        first = next((rid for rid in chosen or [] if ctx.has_run(rid)), None)
        # The manage section follows the comparison until a run is chosen there.
        return [*compare_view(ctx, chosen, code), first if first and not target_id else gr.skip()]

    picker.change(show, [picker, target, lang], view + [target], show_progress="hidden", **private)

    def retarget(was_armed, code):
        """Choosing another run disarms Delete (the button's own words come back)."""
        if not was_armed:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return gr.update(value=t("compare.ui.delete", code)), "", "", None

    target.change(retarget, [armed, lang], [delete, armed, manage_note, said], show_progress="hidden", **private)

    def on_export(run_id, code):
        if not run_id:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), *said_now(Msg("compare.ui.pick_run"), code)
        try:
            text, cmd, download, path = export_files(ctx, run_id)
        except Exception as exc:  # an unknown id, an unreadable config, a full disk: one sentence
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), *said_now(explain(exc), code)
        return (gr.update(visible=True), text, cmd, download,
                *said_now(Msg("compare.ui.exported", run=run_id, path=path), code))

    export.click(on_export, [target, lang], [exported, recipe, command, recipe_file, manage_note, said], **private)

    after_change = [table, picker, target] + view

    def redrawn(code, chosen, target_id):
        """The table, both lists and the comparison after a rename or a delete."""
        picked, targeted = lists(code, chosen, target_id)
        kept = [rid for rid in chosen or [] if ctx.has_run(rid)]
        return [redraw_table(code), picked, targeted, *compare_view(ctx, kept, code)]

    def on_rename(run_id, text, code, chosen, key):
        skip = [gr.skip()] * (len(after_change) + 1)
        if not run_id:
            return [*said_now(Msg("compare.ui.pick_run"), code)] + skip
        try:
            run = compare.get_run(ctx.store, run_id)
            new = compare.rename_run(run, text)
        except Exception as exc:
            return [*said_now(explain(exc), code)] + skip
        msg = Msg("compare.ui.renamed", run=run.id, label=new) if new else Msg("compare.ui.unlabelled", run=run.id)
        return [*said_now(msg, code)] + redrawn(code, chosen, run.id) + [(key or 0) + 1]

    rename.click(on_rename, [target, label, lang, picker, plot_key], [manage_note, said] + after_change + [plot_key],
                 **private)

    def on_delete(run_id, was_armed, code, chosen):
        """First click: arm (the button asks to confirm). Second click, same run: delete."""
        skip = [gr.skip()] * len(after_change)
        if not run_id:
            return [gr.skip(), "", *said_now(Msg("compare.ui.pick_run"), code)] + skip
        if was_armed != run_id:
            return [gr.update(value=t("compare.ui.confirm_delete", code, run=run_id)), run_id,
                    *said_now(Msg("compare.ui.armed", run=run_id), code)] + skip
        disarmed = [gr.update(value=t("compare.ui.delete", code)), ""]
        try:
            gone = compare.delete_run(ctx.store, run_id, ctx.jobs)
        except Exception as exc:  # active, being evaluated, unknown: the sentence stays by the button
            return disarmed + [*said_now(explain(exc), code)] + skip
        return disarmed + [*said_now(Msg("compare.ui.deleted", run=gone), code)] + redrawn(code, chosen, None)

    delete.click(on_delete, [target, armed, lang, picker], [delete, armed, manage_note, said] + after_change,
                 **private)

    def on_language(code, chosen, msg):
        """The comparison and the manage note in the new language; an armed Delete is disarmed
        (the registry has just put the button's own words back), and its question goes."""
        if isinstance(msg, dict) and msg.get("code") == "compare.ui.armed":
            return [*compare_view(ctx, chosen, code), "", "", None]
        return [*compare_view(ctx, chosen, code), "", render(msg, code) if msg else gr.skip(), gr.skip()]

    texts.on_language(on_language, [lang, picker, said], view + [armed, manage_note, said])

    return {"lists": (lists, [picker, target], [picker, target])}
