"""Train tab: the Hugging Face Hub next to the Model field: its status, curated models, the token.

    hub = hub_panel.build(ctx, texts, fields, lang)   # in train_tab.build, under the model field
    hub["status"]                                      # the one-line note (a gr.Markdown)
    hub["load"]                                        # (fn, inputs, outputs) to refresh it on page load

The status line (online / unreachable / offline, and where the token comes from) is computed by
`studio.hub.hub_status`: at most one short probe, cached, so it never holds the page up. It is
drawn by a one-shot timer after the page loads (not while the Blocks are built, so starting the
studio never waits on the network), again when the model changes, and on a language switch.

The token box is a password field whose value goes to `studio.hub.set_token` and nowhere else:
no handler returns it, the status line only says that a token is set. It is left out in demo
mode, where one process-wide token would be every visitor's.
"""

from __future__ import annotations

import gradio as gr

from studio import hub
from studio.errors import explain
from studio.estimate import human_bytes, human_count
from studio.i18n import render, t


def status_text(lang_code: str | None) -> str:
    return render(hub.status_message(), lang_code)


def models_table(lang_code: str | None) -> str:
    """The curated models as a Markdown table (ids, sizes and licenses are our own constants)."""
    head = [t(code, lang_code) for code in ("hub.col_model", "hub.col_size", "hub.col_license", "hub.col_needs",
                                            "hub.col_memory")]
    lines = [t("hub.panel_intro", lang_code), "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for m in hub.CURATED:
        memory = hub.lora_memory(m)
        needs = t("hub.needs_gated" if m.gated else "hub.needs_open", lang_code)
        lines.append(f"| [{m.id}]({m.url}) | {human_count(m.params)} | {m.license} | {needs} | "
                     f"{human_bytes(memory['gpu'])} · {human_bytes(memory['cpu'])} |")
    return "\n".join(lines + ["", t("hub.memory_note", lang_code)])


def build(ctx, texts, fields: dict, lang) -> dict:
    status = gr.Markdown("", elem_id="hub-status", elem_classes="field-note")
    with texts.add(gr.Accordion, label="hub.panel_title", open=False, elem_id="hub-panel"):
        texts.add(gr.Markdown, value=models_table, elem_id="hub-models")
        token = None
        if getattr(ctx, "demo", None) is None:
            token = texts.add(gr.Textbox, label="hub.token_label", info="hub.token_help", type="password",
                              value="", max_lines=1, elem_id="hub-token")

    def on_token(value, lang_code):
        """Hold the token; answer with the status line only (never the token)."""
        try:
            hub.set_token(value)
        except Exception as exc:
            hub.set_token("")
            return f"⚠ {render(explain(exc), lang_code)}"
        return status_text(lang_code)

    if token is not None:
        token.change(on_token, [token, lang], status, api_visibility="private", show_progress="hidden",
                     trigger_mode="always_last")

    # After the page has loaded, once: the first probe may take HUB_PROBE_SECONDS.
    first = gr.Timer(0.5)
    first.tick(lambda code: (status_text(code), gr.Timer(active=False)), lang, [status, first],
               api_visibility="private", show_progress="hidden", trigger_mode="once",
               concurrency_limit=None)
    fields["model.path"].change(status_text, lang, status, api_visibility="private",
                                show_progress="hidden", trigger_mode="always_last", concurrency_limit=None)
    texts.on_language(status_text, lang, status, slow=True)
    return {"status": status, "token": token, "load": (status_text, [lang], status)}
