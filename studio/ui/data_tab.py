"""Data tab (first version): upload or pick a dataset, see its format, size and first rows.

Uploads are copied into `<home>/uploads/` so runs keep working after the browser's temporary
file is gone; an uploaded file then appears in the Train tab's dataset list.
"""

from __future__ import annotations

import json

import gradio as gr
import pandas as pd

from studio.data import detect_format, load_rows, to_sft_records
from studio.errors import UserError, explain


def preview(source: str):
    """(summary markdown, first rows) for a dataset name or path; errors as one line."""
    if not source:
        return "Pick or upload a dataset.", pd.DataFrame()
    try:
        rows = load_rows(source)
        fmt = detect_format(rows)
        usable = len(to_sft_records(rows, fmt))
    except UserError as exc:
        return f"⚠ {exc}", pd.DataFrame()
    except Exception as exc:
        return f"⚠ {explain(exc)}", pd.DataFrame()
    head = pd.DataFrame([{k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                          for k, v in row.items()} for row in rows[:20]])
    summary = (f"**{len(rows)} rows**, format **{fmt}**, {usable} usable for training "
               f"(split 7:2:1 into train / validation / test when a run starts).")
    return summary, head


def build(ctx, train_fields: dict):
    gr.Markdown("Upload a JSON, JSONL, CSV or Parquet file, or pick a bundled demo set.",
                elem_classes="tab-intro")
    with gr.Row():
        choice = gr.Dropdown(["demo-en", "demo-zh", "demo-dpo"] + ctx.uploaded_datasets(),
                             value="demo-en", label="Dataset", allow_custom_value=True, scale=3)
        upload = gr.File(label="Upload", file_types=[".json", ".jsonl", ".csv", ".parquet"], scale=2)
    summary = gr.Markdown(elem_id="data-summary")
    table = gr.Dataframe(interactive=False, wrap=True, max_height=420)
    use = gr.Button("Use this dataset for training", size="sm")

    def on_upload(file):
        if not file:
            return gr.skip(), gr.skip(), gr.skip()
        try:
            path = ctx.save_upload(file)
        except UserError as exc:
            return gr.skip(), f"⚠ {exc}", pd.DataFrame()
        text, head = preview(path)
        return gr.update(choices=["demo-en", "demo-zh", "demo-dpo"] + ctx.uploaded_datasets(), value=path), text, head

    choice.change(preview, choice, [summary, table], api_visibility="private")
    upload.upload(on_upload, upload, [choice, summary, table], api_visibility="private")
    use.click(lambda c: gr.update(value=c, choices=["demo-en", "demo-zh"] + ctx.uploaded_datasets()),
              choice, train_fields["data.path"], api_visibility="private")
    return {"load": (preview, [choice], [summary, table])}
