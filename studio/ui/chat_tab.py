"""Chat tab (first version): talk to the base model or a finished run, answers streamed.

The A/B view of two adapters and merge/export build on this in a later release.
"""

from __future__ import annotations

import gradio as gr

from studio.errors import explain
from studio.infer import ModelCache, stream_reply

BASE = "Base model (demo)"


def model_choices(ctx) -> list[tuple[str, str]]:
    choices = [(BASE, "demo")]
    for r in ctx.store.list():
        if r["output"] and r["state"] in ("completed", "stopped"):
            choices.append((f"{r['id']} · {r['method']} · {r['state']}", r["output"]))
    return choices


def build(ctx):
    cache = ModelCache()
    gr.Markdown("Talk to the base model or to a trained run.", elem_classes="tab-intro")
    with gr.Row():
        source = gr.Dropdown(model_choices(ctx), value="demo", label="Model", scale=3, elem_id="chat-model")
        refresh = gr.Button("Refresh list", size="sm", scale=1)
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():
            max_new = gr.Slider(8, 512, value=96, step=8, label="Max new tokens")
            temperature = gr.Slider(0, 1.5, value=0, step=0.05, label="Temperature",
                                    info="0 = always the most likely token (repeatable answers)")
            top_p = gr.Slider(0.1, 1, value=0.95, step=0.05, label="Top-p")
    chat = gr.Chatbot(height=380, elem_id="chatbot")
    with gr.Row():
        box = gr.Textbox(placeholder="Ask something, e.g. What is the opposite of hot?", show_label=False,
                         scale=5, elem_id="chat-input")
        send = gr.Button("Send", variant="primary", scale=1)
    clear = gr.Button("Clear", size="sm")

    def respond(message, history, src, max_new_tokens, temp, p):
        if not message.strip():
            yield history, message
            return
        history = (history or []) + [{"role": "user", "content": message},
                                     {"role": "assistant", "content": ""}]
        try:
            model, tokenizer = cache.get(src)
            messages = [{"role": m["role"], "content": m["content"]} for m in history[:-1]]
            for text in stream_reply(model, tokenizer, messages, int(max_new_tokens), float(temp), float(p)):
                history[-1]["content"] = text
                yield history, ""
        except Exception as exc:
            history[-1]["content"] = f"⚠ {explain(exc)}"
            yield history, ""

    for trigger in (send.click, box.submit):
        trigger(respond, [box, chat, source, max_new, temperature, top_p], [chat, box],
                api_visibility="private")
    clear.click(lambda: [], None, chat, api_visibility="private")
    refresh.click(lambda: gr.update(choices=model_choices(ctx)), None, source, api_visibility="private")
    def select_run(run_id: str):
        """Preselect a run (from the Train tab's 'Chat with it')."""
        run = ctx.store.get(run_id) if run_id and ctx.has_run(run_id) else None
        output = run.output_dir() if run else None
        return gr.update(choices=model_choices(ctx), value=str(output) if output else "demo")

    return {"load": (lambda: gr.update(choices=model_choices(ctx)), [], [source]),
            "select_run": (select_run, source)}
