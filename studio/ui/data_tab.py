"""Data tab (first version): upload or pick a dataset, see its format, size and first rows.

Uploads are copied into `<home>/uploads/` so runs keep working after the browser's temporary
file is gone; an uploaded file then appears in this tab's and the Train tab's dataset lists
(by file name; the value is its path), also after a reload. Every path from the page goes
through `Workspace.resolve_user_path`; column names and cells are shown as text, never HTML.
"""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pandas as pd

from studio.data import detect_format, load_rows, to_sft_records
from studio.errors import explain
from studio.i18n import Msg, render
from studio.ui.texts import Texts
from studio.ui.train_tab import dataset_choices as train_dataset_choices

BUNDLED = ["demo-en", "demo-zh", "demo-dpo"]


def dataset_choices(ctx) -> list[tuple[str, str]]:
    return [(name, name) for name in BUNDLED] + [(Path(p).name, p) for p in ctx.uploaded_datasets()]


def preview_table(rows: list[dict]) -> pd.DataFrame:
    """The first rows, nested values as JSON text. The table is declared `datatype="str"`:
    gradio 6.31 then draws headers and cells as text (checked in the browser test), so a column
    named `<img src=…>` shows those characters instead of loading the image."""
    return pd.DataFrame([{str(k): json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                          for k, v in row.items()} for row in rows[:20]])


def _as_text(text: str) -> str:
    """Text for a Markdown component: entities display as the characters typed (a sentence
    about a file may quote its column names, which must not become markup)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def preview(ctx, source: str, lang: str | None = None):
    """(summary markdown, first rows) for a dataset name or path; errors as one sentence."""
    if not source:
        return render(Msg("ui.data.pick"), lang), pd.DataFrame()
    try:
        path = ctx.resolve_user_path(source, "data")
        rows = load_rows(path)
        fmt = detect_format(rows)
        usable = len(to_sft_records(rows, fmt))
    except Exception as exc:  # the sentence may quote column names: shown as text, not markup
        return f"⚠ {_as_text(render(explain(exc), lang))}", pd.DataFrame()
    summary = render(Msg("ui.data.summary", rows=len(rows), format=fmt, usable=usable), lang)
    return summary, preview_table(rows)


def build(ctx, train_fields: dict, texts: Texts, lang):
    texts.add(gr.Markdown, value="ui.data.intro", elem_classes="tab-intro")
    with gr.Row():
        choice = texts.add(gr.Dropdown, choices=dataset_choices(ctx), value="demo-en", label="ui.data.dataset",
                           allow_custom_value=True, scale=3, elem_id="data-choice")
        upload = texts.add(gr.File, label="ui.data.upload", file_types=[".json", ".jsonl", ".csv", ".parquet"],
                           scale=2, elem_id="data-upload")
    summary = gr.Markdown(elem_id="data-summary")
    table = gr.Dataframe(interactive=False, wrap=True, max_height=420, elem_id="data-table", datatype="str")
    use = texts.add(gr.Button, value="ui.data.use", size="sm")

    def on_upload(file, lang_code):
        if not file:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            path = ctx.save_upload(file)
        except Exception as exc:
            return gr.skip(), f"⚠ {_as_text(render(explain(exc), lang_code))}", pd.DataFrame(), gr.skip()
        text, head = preview(ctx, path, lang_code)
        return (gr.update(choices=dataset_choices(ctx), value=path), text, head,
                gr.update(choices=train_dataset_choices(ctx)))

    choice.change(lambda source, code: preview(ctx, source, code), [choice, lang], [summary, table],
                  api_visibility="private")
    lang.change(lambda source, code: preview(ctx, source, code)[0], [choice, lang], summary,
                api_visibility="private")
    upload.upload(on_upload, [upload, lang], [choice, summary, table, train_fields["data.path"]],
                  api_visibility="private", show_progress_on=[table])
    use.click(lambda c: gr.update(value=c, choices=train_dataset_choices(ctx)),
              choice, train_fields["data.path"], api_visibility="private", show_progress="hidden")

    def on_load(source, code):
        text, head = preview(ctx, source, code)
        return gr.update(choices=dataset_choices(ctx)), text, head

    return {"load": (on_load, [choice, lang], [choice, summary, table])}
