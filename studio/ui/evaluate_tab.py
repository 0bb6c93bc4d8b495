"""Evaluate tab: base model against fine-tuned, on held-out data — scores, examples, diffs, report.

    ev = evaluate_tab.build(ctx, texts, lang)      # in app.build_app, inside the Evaluate tab
    ev["select_run"]                               # (fn, outputs): the Train tab's "Evaluate it"

Pick runs and a test set (each run's held-out split by default, a library dataset, a bundled
set or an upload), optionally a general set for the forgetting check, and press Evaluate. The
work is a job of the one job manager (studio.evaluate): while a training run holds the device
the evaluation waits in line and the card says so. A 1 s timer follows the request; when it
ends the results are drawn from the eval folders: the "base → fine-tuned (change, %)" table,
a bar chart, the per-example table (sortable; filter with its search box), a word-level diff of
one example, CSV/JSONL exports and the run's training report. Everything a user or a model wrote
reaches the page as text: Dataframes with datatype "str", HighlightedText, HTML built only from
html.escape'd strings. The run list follows new and deleted runs (a timer on the run store's
signature); a chosen run that was deleted is unchosen by that redraw.
"""

from __future__ import annotations

import csv
import html
import json
import shutil
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from studio import evaluate as ev
from studio.errors import explain
from studio.generation import MAX_SEED, GenerationSettings
from studio.i18n import Msg, render, t
from studio.ui.texts import Texts

METRIC_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "bleu": "BLEU",
                "eval_loss": "evaluate.ui.metric_loss", "perplexity": "evaluate.ui.metric_ppl"}
SUMMARY_COLUMNS = ["run", "set", "metric", "base", "tuned", "change", "pct"]
EXAMPLE_COLUMNS = ["n", "prompt", "reference", "base", "tuned", "base_rouge_l", "tuned_rouge_l",
                   "base_bleu", "tuned_bleu"]
EXAMPLE_TYPES = ["number", "str", "str", "str", "str", "number", "number", "number", "number"]
DIFF_COLORS = {"+": "#bbf7d0", "-": "#fecaca"}
WORKING = ("running", "waiting")
REFRESH_SECONDS = 5  # how often the run list looks for new or deleted runs (a stat per run)


def metric_name(metric: str, lang: str | None) -> str:
    name = METRIC_NAMES.get(metric, metric)
    return t(name, lang) if name.startswith("evaluate.") else name


def num(value, digits: int = 4) -> str:
    return ev._fmt(value, digits)


# ---- choices ----------------------------------------------------------------------------------

def run_choices(ctx, lang: str | None = None) -> list[tuple[str, str]]:
    """Runs that produced a model (completed or stopped), newest first."""
    out = []
    for r in ctx.store.list():
        if r["output"] and r["state"] in ("completed", "stopped"):
            label = f" · {r['label']}" if r.get("label") else ""  # a rename (Run.label), shown as text
            out.append((f"{r['id']} · {r['method']} · {t('state.' + r['state'], lang)}{label}", r["id"]))
    return out


def runs_update(ctx, lang: str | None, chosen) -> dict:
    """The run list with fresh choices; chosen runs that are no longer listed (deleted) are
    unchosen, the rest kept (the value is sent only then, so a redraw never fights a click)."""
    choices = run_choices(ctx, lang)
    known = {value for _, value in choices}
    kept = [rid for rid in chosen or [] if rid in known]
    return gr.update(choices=choices, **({"value": kept} if kept != list(chosen or []) else {}))


def _library_choices(ctx) -> list[tuple[str, str]]:
    try:
        from studio.library import Library

        return [(label, ref) for label, ref in Library(ctx.home).choices()]
    except Exception:  # the library is optional; a damaged one must not break the tab
        return []


def data_choices(ctx, lang: str | None = None) -> list[tuple[str, str]]:
    choices = [(t("evaluate.ui.data_test", lang), "test"), ("demo-en", "demo-en"), ("demo-zh", "demo-zh")]
    choices += _library_choices(ctx)
    choices += [(Path(p).name, p) for p in ctx.uploaded_datasets()]
    return choices


def general_choices(ctx, lang: str | None = None) -> list[tuple[str, str]]:
    return [(t("evaluate.ui.general_none", lang), "")] + [c for c in data_choices(ctx, lang) if c[1] != "test"]


# ---- drawing ----------------------------------------------------------------------------------

def render_card(status: dict | None, lang: str | None = None, error=None) -> str:
    """The progress card: state, bar, the current step in words; an error stays as a sentence."""
    if error is not None:
        title = html.escape(t("evaluate.ui.could_not_start", lang))
        return f'<div class="status-card failed"><b>{title}</b> {html.escape(render(error, lang))}</div>'
    if not status or status.get("state") == "none":
        return f'<div class="status-card idle">{html.escape(t("evaluate.ui.ready", lang))}</div>'
    state = status["state"]
    css = {"waiting": "queued", "running": "running"}.get(state, state)
    title = t("evaluate.ui.state_" + state, lang) if state in ("waiting", "running", "completed", "stopped",
                                                                "failed") else state
    pct = int(round(status.get("fraction", 0) * 100))
    message = render(status.get("message"), lang) if status.get("message") else ""
    return (f'<div class="status-card {html.escape(css)}"><div class="status-title">{html.escape(title)}</div>'
            f'<div class="bar"><div class="fill" style="width:{pct}%"></div></div>'
            f'<div class="status-details">{pct}% · {html.escape(message)}</div></div>')


def summary_frame(results: list[dict], lang: str | None = None) -> pd.DataFrame:
    rows = []
    for entry in results:
        for role in ("test", "general"):
            scores = entry.get(role)
            if role == "general" and not scores:
                continue
            label = t("evaluate.ui.set_" + role, lang)
            for row in ev.comparison_rows(scores):
                pct = row["pct"]
                rows.append([entry["run"], label, metric_name(row["metric"], lang), num(row["base"]),
                             num(row["tuned"]),
                             ("+" if (row["change"] or 0) > 0 else "") + num(row["change"]),
                             "n/a" if pct is None else f"{pct:+.1f}%"])
    return pd.DataFrame(rows, columns=[t("evaluate.ui.col." + c, lang) for c in SUMMARY_COLUMNS])


def chart_frame(results: list[dict], lang: str | None = None) -> pd.DataFrame | None:
    """ROUGE-1/2/L and BLEU/100 (all 0-1) of each model, bars side by side."""
    rows = []
    for entry in results:
        scores = entry.get("test")
        if not scores:
            continue
        for who in ("base", "tuned"):
            series = t("evaluate.ui.base", lang) if who == "base" else f"{entry['run'][-12:]}"
            for metric in ("rouge1", "rouge2", "rougeL", "bleu"):
                value = scores[who].get(metric)
                if isinstance(value, (int, float)):
                    value = value / 100 if metric == "bleu" else value
                    rows.append({"bar": f"{metric_name(metric, lang)} · {series}", "score": round(value, 4),
                                 "model": series})
    return pd.DataFrame(rows) if rows else None


def examples_frame(folder: str | None, lang: str | None = None) -> pd.DataFrame:
    rows = []
    for i, e in enumerate(ev.read_examples(Path(folder)) if folder else [], 1):
        rows.append([i, e.get("prompt", ""), e.get("reference", ""), e.get("base", ""), e.get("tuned", ""),
                     _round(e.get("base_rougeL")), _round(e.get("tuned_rougeL")), _round(e.get("base_bleu")),
                     _round(e.get("tuned_bleu"))])
    return pd.DataFrame(rows, columns=[t("evaluate.ui.col." + c, lang) for c in EXAMPLE_COLUMNS])


def _round(value):
    return round(value, 4) if isinstance(value, (int, float)) else None


def notes_html(results: list[dict], ctx, lang: str | None = None) -> str:
    """Tokenization, the forgetting verdict and the human score per run, as escaped text."""
    lines = []
    for entry in results:
        scores = entry.get("test")
        run = entry["run"]
        if not scores:
            lines.append(t("evaluate.ui.no_scores", lang, run=run))
            continue
        lines.append(t("evaluate.ui.scored_on", lang, run=run, rows=scores.get("rows"),
                       data=scores.get("data_label") or scores.get("data"),
                       tokenization=ev.tokenization_msg(scores.get("tokenization"))))
        verdict = ev.forgetting_verdict(entry.get("general"))
        if verdict is not None:
            lines.append(render(verdict, lang))
        votes = ev.human_score(ctx.home, run, (scores.get("model") or "",))
        if votes:
            lines.append(t("evaluate.ui.human_score", lang, rate=num(votes["win_rate"], 2) if votes["win_rate"]
                           is not None else "n/a", votes=votes["votes"], wins=votes["wins"],
                           losses=votes["losses"], ties=votes["ties"]))
        else:
            lines.append(t("evaluate.ui.no_votes", lang))
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines)


def diff_pieces(folder: str | None, n: int, who: str) -> list[tuple[str, str | None]]:
    examples = ev.read_examples(Path(folder)) if folder else []
    if not examples:
        return []
    e = examples[max(0, min(int(n or 1), len(examples)) - 1)]
    return ev.word_diff(e.get("reference", ""), e.get(who, ""))


def export_files(results: list[dict], shown: str | None) -> list[str]:
    """CSV and JSONL of the shown run's per-example results, plus the scores (JSON), in a temp
    folder Gradio may serve."""
    entry = next((e for e in results if e["run"] == shown), results[0] if results else None)
    if not entry or not entry.get("test_folder"):
        return []
    folder = Path(entry["test_folder"])
    examples = ev.read_examples(folder)
    if not examples:
        return []
    out = Path(tempfile.mkdtemp(prefix="studio-eval-"))
    stem = f"eval-{entry['run']}"
    with open(out / f"{stem}.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(examples[0]))
        writer.writeheader()
        writer.writerows(examples)
    shutil.copyfile(folder / ev.EXAMPLES_FILE, out / f"{stem}.jsonl")
    (out / f"{stem}-scores.json").write_text(json.dumps({k: entry.get(k) for k in ("test", "general")},
                                                        indent=1, ensure_ascii=False), encoding="utf-8")
    return [str(out / f"{stem}.csv"), str(out / f"{stem}.jsonl"), str(out / f"{stem}-scores.json")]


def report_files(ctx, run_id: str) -> list[str]:
    """The run's training report as PNG and PDF (studio.report), copied where Gradio serves files."""
    from studio.report import training_report

    run = ctx.store.get(run_id)
    out = Path(tempfile.mkdtemp(prefix="studio-report-"))
    files = []
    for suffix in (".png", ".pdf"):
        path = out / f"report-{run_id}{suffix}"
        training_report(run, path)
        files.append(str(path))
    return files


# ---- the tab ----------------------------------------------------------------------------------

def build(ctx, texts: Texts, lang):
    evaluator = ev.evaluator(ctx.jobs, ctx.home, ctx.resolve_user_path)
    texts.add(gr.Markdown, value="evaluate.ui.intro", elem_classes="tab-intro")
    with gr.Row():
        # allow_custom_value: a deleted run's id must reach the redraw that unchooses it (Gradio
        # would refuse it against the new choices first); the evaluator checks ids itself.
        runs = texts.add(gr.Dropdown, choices=lambda code: run_choices(ctx, code), multiselect=True,
                         allow_custom_value=True, label="evaluate.ui.runs", info="evaluate.ui.runs_help", scale=4, elem_id="eval-runs")
        refresh = texts.add(gr.Button, value="evaluate.ui.refresh", size="sm", scale=1, elem_id="eval-refresh")
    with gr.Row():
        data = texts.add(gr.Dropdown, choices=lambda code: data_choices(ctx, code), value="test",
                         label="evaluate.ui.data", info="evaluate.ui.data_help", scale=3, elem_id="eval-data")
        upload = texts.add(gr.File, label="evaluate.ui.upload", file_types=[".json", ".jsonl", ".csv", ".parquet"],
                           height=110, scale=2, elem_id="eval-upload")
        general = texts.add(gr.Dropdown, choices=lambda code: general_choices(ctx, code), value="",
                            label="evaluate.ui.general", info="evaluate.ui.general_help", scale=3,
                            elem_id="eval-general")
    with texts.add(gr.Accordion, label="evaluate.ui.settings", open=False, elem_id="eval-settings"):
        with gr.Row():
            batch = texts.add(gr.Slider, minimum=1, maximum=128, step=1, value=16, label="evaluate.ui.batch_size",
                              info="evaluate.ui.batch_size_help")
            max_new = texts.add(gr.Slider, minimum=8, maximum=1024, step=8, value=64,
                                label="evaluate.ui.max_new_tokens")
            max_rows = texts.add(gr.Number, value=0, precision=0, minimum=0, label="evaluate.ui.max_rows",
                                 info="evaluate.ui.max_rows_help", elem_id="eval-max-rows")
        with gr.Row():
            sample = texts.add(gr.Checkbox, value=False, label="evaluate.ui.sample", info="evaluate.ui.sample_help")
            temperature = texts.add(gr.Slider, minimum=0.05, maximum=1.5, step=0.05, value=0.7,
                                    label="evaluate.ui.temperature")
            top_p = texts.add(gr.Slider, minimum=0.05, maximum=1, step=0.05, value=0.95, label="evaluate.ui.top_p")
            seed = texts.add(gr.Number, value=42, precision=0, minimum=0, maximum=MAX_SEED, label="evaluate.ui.seed")
            stem = texts.add(gr.Checkbox, value=False, label="evaluate.ui.stem", info="evaluate.ui.stem_help")
    with gr.Row():
        start = texts.add(gr.Button, value="evaluate.ui.start", variant="primary", scale=2, elem_id="eval-start")
        stop = texts.add(gr.Button, value="evaluate.ui.stop", variant="stop", scale=1, elem_id="eval-stop")
    card = gr.HTML(render_card(None), elem_id="eval-status")
    summary = texts.add(gr.Dataframe, value=summary_frame([]), label="evaluate.ui.summary", interactive=False,
                        datatype="str", wrap=True, elem_id="eval-summary")
    notes = gr.HTML("", elem_id="eval-notes")
    chart = texts.add(gr.BarPlot, value=None, x="bar", y="score", color="model", label="evaluate.ui.chart",
                      height=260, y_lim=[0, 1], x_label_angle=-30, elem_id="eval-chart")
    with gr.Row():
        shown = texts.add(gr.Dropdown, choices=[], label="evaluate.ui.shown_run", scale=3, elem_id="eval-shown")
        pick = texts.add(gr.Number, value=1, precision=0, minimum=1, label="evaluate.ui.example",
                         info="evaluate.ui.example_help", scale=1, elem_id="eval-pick")
    examples = texts.add(gr.Dataframe, value=examples_frame(None), label="evaluate.ui.examples", interactive=False,
                         datatype=EXAMPLE_TYPES, wrap=True, max_height=420, show_search="filter",
                         column_widths=["4%", "18%", "16%", "16%", "16%", "7.5%", "7.5%", "7.5%", "7.5%"],
                         elem_id="eval-examples")
    with gr.Row():
        diff_tuned = texts.add(gr.HighlightedText, value=[], label="evaluate.ui.diff_tuned", color_map=DIFF_COLORS,
                               show_legend=True, combine_adjacent=True, elem_id="eval-diff-tuned")
        diff_base = texts.add(gr.HighlightedText, value=[], label="evaluate.ui.diff_base", color_map=DIFF_COLORS,
                              show_legend=True, combine_adjacent=True, elem_id="eval-diff-base")
    with gr.Row():
        exports = texts.add(gr.File, label="evaluate.ui.exports", file_count="multiple", interactive=False,
                            elem_id="eval-exports")
        with gr.Column():
            report_btn = texts.add(gr.Button, value="evaluate.ui.report", size="sm", elem_id="eval-report-btn")
            report = texts.add(gr.File, label="evaluate.ui.report_files", file_count="multiple", interactive=False,
                               elem_id="eval-report")

    request_id = gr.State("")
    drawn = gr.State("")  # the request whose results are on screen
    results = gr.State([])  # results entries (scores dicts + folders) on screen
    error = gr.State(None)  # a refused Evaluate: the sentence stays until the next try
    listed = gr.State(None)  # the run store's signature when the run list was last drawn

    def folder_of(res, run_id):
        entry = next((e for e in res or [] if e["run"] == run_id), None)
        return entry.get("test_folder") if entry else None

    def draw(res, shown_run, lang_code):
        """Every result output from the results entries, in the page's language."""
        shown_run = shown_run if any(e["run"] == shown_run for e in res) else (res[0]["run"] if res else None)
        folder = folder_of(res, shown_run)
        return [summary_frame(res, lang_code), notes_html(res, ctx, lang_code), chart_frame(res, lang_code),
                gr.update(choices=[e["run"] for e in res], value=shown_run), gr.update(value=1),
                examples_frame(folder, lang_code), diff_pieces(folder, 1, "tuned"), diff_pieces(folder, 1, "base"),
                export_files(res, shown_run) or None]

    result_outputs = [summary, notes, chart, shown, pick, examples, diff_tuned, diff_base, exports]

    def on_start(run_ids, data_source, general_source, batch_size, max_new_tokens, rows, do_sample, temp, p,
                 seed_value, stemming, lang_code):
        try:
            settings = GenerationSettings.from_dict({
                "batch_size": int(batch_size), "max_new_tokens": int(max_new_tokens), "do_sample": bool(do_sample),
                "temperature": float(temp), "top_p": float(p), "seed": int(seed_value or 0)})
            request = evaluator.start(list(run_ids or []), data_source or "test", settings,
                                      general=general_source or None, stem=bool(stemming), max_rows=int(rows or 0))
        except Exception as exc:  # one sentence that stays, never a traceback
            note = explain(exc).to_dict()
            return ["", render_card(None, lang_code, note), note, gr.skip()]
        return [request.id, render_card(evaluator.status(request.id), lang_code), None, ""]

    def poll(rid, done, res, note, shown_run, lang_code):
        if note is not None or not rid:
            return [gr.skip()] * 4 + [gr.skip()] * len(result_outputs)
        status = evaluator.status(rid)
        card_html = render_card(status, lang_code)
        if status["state"] in WORKING or done == rid:
            return [card_html, gr.skip(), gr.skip(), gr.update(interactive=status["state"] in WORKING)] + [
                gr.skip()] * len(result_outputs)
        res = [r for r in evaluator.results(rid) if r.get("test")]
        return [card_html, rid, res, gr.update(interactive=False)] + draw(res, shown_run, lang_code)

    def on_stop(rid, lang_code):
        evaluator.stop(rid)
        return render_card(evaluator.status(rid), lang_code)

    def on_upload(path, lang_code):
        if not path:
            return gr.skip(), gr.skip(), None
        try:
            saved = ctx.save_upload(path)
        except Exception as exc:
            note = explain(exc).to_dict()
            return gr.skip(), render_card(None, lang_code, note), note
        return gr.update(choices=data_choices(ctx, lang_code), value=saved), gr.skip(), None

    def on_shown(res, shown_run, lang_code):
        folder = folder_of(res, shown_run)
        return [examples_frame(folder, lang_code), gr.update(value=1), diff_pieces(folder, 1, "tuned"),
                diff_pieces(folder, 1, "base"), export_files(res, shown_run) or None]

    def on_pick(res, shown_run, n):
        folder = folder_of(res, shown_run)
        return diff_pieces(folder, n, "tuned"), diff_pieces(folder, n, "base")

    def on_select(evt: gr.SelectData):
        row = evt.row_value or []
        return gr.update(value=int(row[0])) if row and isinstance(row[0], (int, float)) else gr.skip()

    def on_report(res, shown_run, lang_code):
        picked = shown_run or (res[0]["run"] if res else None)
        if not picked:
            return None, render_card(None, lang_code, Msg("evaluate.ui.pick_run_first").to_dict())
        try:
            return report_files(ctx, picked), gr.skip()
        except Exception as exc:
            return None, render_card(None, lang_code, explain(exc).to_dict())

    def show_saved(run_ids, lang_code):
        """Chosen runs' newest saved evaluations (no work): what was already measured shows at once."""
        res = []
        for run_id in run_ids or []:
            if not ctx.has_run(run_id):
                continue
            run = ctx.store.get(run_id)
            saved = ev.run_evaluations(run)
            test = next((s for s in saved if s.get("role", "test") == "test"), None)
            if test is None:
                continue
            general = next((s for s in saved if s.get("key") == test.get("general_key")), None)
            res.append({"run": run_id, "test": test, "general": general, "test_folder": test["folder"]})
        return res

    def on_runs_change(run_ids, rid, lang_code):
        if rid and evaluator.status(rid)["state"] in WORKING:
            return [gr.skip()] * (1 + len(result_outputs))
        res = show_saved(run_ids, lang_code)
        return [res] + draw(res, None, lang_code)

    inputs = [runs, data, general, batch, max_new, max_rows, sample, temperature, top_p, seed, stem, lang]
    start.click(on_start, inputs, [request_id, card, error, drawn], api_visibility="private",
                show_progress="hidden")
    stop.click(on_stop, [request_id, lang], card, api_visibility="private", show_progress="hidden")
    poll_inputs = [request_id, drawn, results, error, shown, lang]
    poll_outputs = [card, drawn, results, stop] + result_outputs
    gr.Timer(1.0).tick(poll, poll_inputs, poll_outputs, api_visibility="private", show_progress="hidden",
                       queue=False)
    upload.upload(on_upload, [upload, lang], [data, card, error], api_visibility="private")
    shown.input(on_shown, [results, shown, lang], [examples, pick, diff_tuned, diff_base, exports],
                api_visibility="private", show_progress="hidden")
    pick.change(on_pick, [results, shown, pick], [diff_tuned, diff_base], api_visibility="private",
                show_progress="hidden")
    examples.select(on_select, None, pick, api_visibility="private", show_progress="hidden")
    report_btn.click(on_report, [results, shown, lang], [report, card], api_visibility="private")
    runs.input(on_runs_change, [runs, request_id, lang], [results] + result_outputs, api_visibility="private",
               show_progress="hidden")
    refresh.click(lambda code, chosen: [runs_update(ctx, code, chosen), gr.update(choices=data_choices(ctx, code)),
                                        gr.update(choices=general_choices(ctx, code))],
                  [lang, runs], [runs, data, general], api_visibility="private")

    def poll_runs(code, chosen, seen):
        """The run list follows new and deleted runs: redrawn only when the store changed."""
        now = ctx.store.signature()
        return (gr.skip(), seen) if now == seen else (runs_update(ctx, code, chosen), now)

    gr.Timer(REFRESH_SECONDS).tick(poll_runs, [lang, runs, listed], [runs, listed], api_visibility="private",
                                   show_progress="hidden", queue=False)

    def on_language(rid, res, shown_run, note, lang_code):
        card_html = render_card(None, lang_code, note) if note is not None else render_card(
            evaluator.status(rid) if rid else None, lang_code)
        return [card_html] + draw(res or [], shown_run, lang_code)

    texts.on_language(on_language, [request_id, results, shown, error, lang], [card] + result_outputs)

    def select_run(run_id: str, lang_code: str = "en"):
        """Open with this run chosen (the Train tab's "Evaluate it") and its saved results shown."""
        chosen = [run_id] if run_id and ctx.has_run(run_id) and ctx.store.get(run_id).output_dir() else []
        res = show_saved(chosen, lang_code)
        card_html = render_card(None, lang_code) if not res else render_card(
            {"state": "completed", "fraction": 1.0, "message": Msg("evaluate.cached", run=run_id)}, lang_code)
        return [gr.Tabs(selected="evaluate"), gr.update(choices=run_choices(ctx, lang_code), value=chosen),
                res, None, card_html] + draw(res, None, lang_code)

    def on_load(lang_code):
        return [gr.update(choices=run_choices(ctx, lang_code)), gr.update(choices=data_choices(ctx, lang_code)),
                gr.update(choices=general_choices(ctx, lang_code)), ctx.store.signature()]

    return {"load": (on_load, [lang], [runs, data, general, listed]),
            "select_run": (select_run, [runs, results, error, card] + result_outputs)}
