"""The Chat tab's Export panel: what the chosen run produced, saved, downloaded, pushed, reproduced.

    parts = export_panel.build(ws, texts, lang, adapter_dropdown, base_dropdown, system_box)

Merge the run's LoRA into its base (safetensors, sharded) or save the adapter alone, into
`<home>/exports/<run>-<kind>[-n]/`; the folder is offered as a zip download (gr.File). Push to
the Hub takes a token used for that one call (never stored, cleared from the box after) and fails
within seconds, with a sentence, when offline. The Python snippet and the `studio chat` command
reproduce the chat outside the studio (gr.Code: shown as text). The backend is studio.export.
"""

from __future__ import annotations

import html
import shutil
import tempfile
from pathlib import Path

import gradio as gr

from studio.errors import explain
from studio.i18n import Msg, render, t
from studio.ui.texts import Texts

KINDS = ("merge", "adapter")


def say(message, lang: str, warn: bool = False) -> str:
    """A sentence for a Markdown line, escaped (paths and Hub answers are not HTML)."""
    text = html.escape(render(message if isinstance(message, Msg) else explain(message), lang), quote=False)
    return f"⚠ {text}" if warn else text


def export_folder(home: Path, run_id: str, kind: str) -> Path:
    """A new folder under <home>/exports for this run and kind (never an existing one)."""
    root = Path(home) / "exports"
    folder, n = root / f"{run_id}-{kind}", 1
    while folder.exists():
        n += 1
        folder = root / f"{run_id}-{kind}-{n}"
    return folder


def export_run(ws, run_id: str, kind: str) -> tuple[Path, Path]:
    """(exported folder, zip for the download) of a finished run; UserError when it cannot be."""
    from studio.errors import UserError
    from studio.export import archive, merge_and_save, save_adapter

    ws.refuse_in_demo("export")  # demo mode (a shared Space): no disk export, no Hub push
    if not run_id or not ws.has_run(run_id):
        raise UserError("chatui.export_pick_run")
    run = ws.store.get(run_id)
    out = export_folder(ws.home, run.id, kind if kind in KINDS else "merge")
    folder = save_adapter(run, out) if kind == "adapter" else merge_and_save(run, out)
    zipped = archive(folder)
    # Gradio serves downloads only from its temp area: the zip moves there (the folder stays).
    download = Path(tempfile.mkdtemp(prefix="studio-export-")) / zipped.name
    shutil.move(str(zipped), download)
    return folder, download


def snippets(ws, run_id: str, base: str, system: str) -> tuple[str, str]:
    """(Python snippet, `studio chat` command) for the chosen run, or for a local base model."""
    from studio.export import chat_command, python_snippet
    from studio.paths import resolve_model_path

    try:
        if run_id and ws.has_run(run_id):
            run = ws.store.get(run_id)
            return python_snippet(run, system=system or ""), chat_command(run, ws.home)
        folder = Path(resolve_model_path(base or "demo"))
        if folder.is_dir():
            return python_snippet(folder, system=system or ""), chat_command(folder)
    except Exception:  # a run that did not finish: the export button says why
        pass
    return "", ""


def build(ws, texts: Texts, lang, source, base, system):
    with texts.add(gr.Accordion, label="chatui.export_title", open=False, elem_id="export-panel",
                   visible=ws.demo is None):  # demo mode: export is refused (export_run) and hidden
        texts.add(gr.Markdown, value="chatui.export_intro", elem_classes="field-note")
        with gr.Row():
            kind = texts.add(gr.Radio, choices=lambda code: [(t("chatui.export_merge", code), "merge"),
                                                              (t("chatui.export_adapter", code), "adapter")],
                             value="merge", label="chatui.export_kind", elem_id="export-kind", scale=3)
            go = texts.add(gr.Button, value="chatui.export_button", variant="secondary", scale=1,
                           elem_id="export-go")
        status = gr.Markdown("", elem_id="export-status", elem_classes="field-note")
        download = texts.add(gr.File, label="chatui.export_download", interactive=False, elem_id="export-file")
        with gr.Row():
            repo = texts.add(gr.Textbox, label="chatui.hub_repo", placeholder="chatui.hub_repo_placeholder",
                             scale=2, elem_id="export-repo")
            token = texts.add(gr.Textbox, label="chatui.hub_token", info="chatui.hub_token_help", type="password",
                              scale=2, elem_id="export-token")
            push = texts.add(gr.Button, value="chatui.hub_push", scale=1, elem_id="export-push")
        snippet = texts.add(gr.Code, label="chatui.snippet", language="python", interactive=False,
                            elem_id="export-snippet")
        command = texts.add(gr.Code, label="chatui.command", language="shell", interactive=False,
                            elem_id="export-command")
    exported = gr.State("")  # the last exported folder (server side), what a push uploads

    def do_export(run_id, how, code):
        if not run_id:
            return say(Msg("chatui.export_pick_run"), code, warn=True), None, ""
        try:
            folder, zipped = export_run(ws, run_id, how)
        except Exception as exc:
            return say(exc, code, warn=True), None, ""
        return say(Msg("chatui.exported", folder=str(folder)), code), str(zipped), str(folder)

    def do_push(run_id, how, folder, repo_id, secret, code):
        from studio.export import push_to_hub

        try:
            ws.refuse_in_demo("export")
            if not run_id:
                return say(Msg("chatui.export_pick_run"), code, warn=True), gr.skip(), ""
            if not folder or not Path(folder).is_dir() or not Path(folder).name.startswith(run_id + "-"):
                folder = str(export_run(ws, run_id, how)[0])
            url = push_to_hub(folder, (repo_id or "").strip(), secret or "")
        except Exception as exc:
            return say(exc, code, warn=True), folder or "", ""  # the token box is emptied either way
        return say(Msg("chatui.pushed", url=url), code), folder, ""

    def show_code(run_id, base_id, system_text):
        return snippets(ws, run_id, base_id, system_text)

    go.click(do_export, [source, kind, lang], [status, download, exported], api_visibility="private")
    push.click(do_push, [source, kind, exported, repo, token, lang], [status, exported, token],
               api_visibility="private")
    for component in (source, base, system):
        component.change(show_code, [source, base, system], [snippet, command], api_visibility="private",
                         show_progress="hidden")
    return {"show_code": show_code, "code_outputs": [snippet, command]}
