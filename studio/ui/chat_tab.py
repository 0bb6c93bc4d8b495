"""Chat tab (first version): talk to the base model or a finished run, answers streamed.

    reply = chat(ctx, cache, "What is the opposite of hot?", history, model="demo")  # also /chat

The model list holds "demo" and run ids (never paths): a run id is looked up in the run store,
so neither the page nor an API client can point the chat at an arbitrary folder. History comes
back from gradio 6 with content as a list of parts; `studio.infer.chat_messages` turns it into
text. Messages are shown as text, never as HTML (escaped for display, unescaped when read back). Suggested questions come from
`assets/data/demo_examples.json` ({"en": [...], "zh": [...]}) in the page's language.
The A/B view of two adapters and merge/export build on this in a later release.
"""

from __future__ import annotations

import html
import json

import gradio as gr

from studio.errors import UserError, explain
from studio.i18n import render, t
from studio.infer import ModelCache, chat_messages, content_text, stream_reply
from studio.paths import ASSETS
from studio.ui.texts import Texts

EXAMPLES = ASSETS / "data" / "demo_examples.json"


def example_questions(lang: str) -> list[str]:
    """The demo model's suggested questions in `lang` (none if the file is missing or broken)."""
    try:
        data = json.loads(EXAMPLES.read_text(encoding="utf-8"))
        questions = data.get(lang) or data.get("en") or []
        return [q for q in questions if isinstance(q, str) and q.strip()][:8]
    except (OSError, ValueError, AttributeError):
        return []


def placeholder(lang: str) -> str:
    questions = example_questions(lang)
    return t("ui.chat.placeholder_example", lang, example=questions[0]) if questions else t("ui.chat.placeholder", lang)


def model_choices(ctx, lang: str | None = None) -> list[tuple[str, str]]:
    choices = [(t("ui.chat.base_model", lang), "demo")]
    for r in ctx.store.list():
        if r["output"] and r["state"] in ("completed", "stopped"):
            choices.append((f"{r['id']} · {r['method']} · {t('state.' + r['state'], lang)}", r["id"]))
    return choices


def model_source(ctx, model: str) -> str:
    """'demo' or a run id -> what `load_for_inference` loads; anything else is refused."""
    if not model or model == "demo":
        return "demo"
    if ctx.has_run(model):
        output = ctx.store.get(model).output_dir()
        if output is not None:
            return str(output)
    raise UserError("ui.chat.unknown_model", model=str(model)[:80])


def chat(ctx, cache: ModelCache, message: str, history: list | None = None, model: str = "demo",
         max_new_tokens: int = 96, temperature: float = 0.0, top_p: float = 0.95):
    """Yield the growing answer to `message` after `history` (role/content messages)."""
    loaded, tokenizer = cache.get(model_source(ctx, model))
    messages = chat_messages(history) + [{"role": "user", "content": message}]
    yield from stream_reply(loaded, tokenizer, messages, int(max_new_tokens), float(temperature), float(top_p))


def as_text(text: str) -> str:
    """What was typed or generated, escaped so the Chatbot shows it as text: gradio's Chatbot
    renders messages as (sanitised) HTML even with Markdown off, so a typed `<img src=…>`
    would become an image. html.unescape gives back exactly the original."""
    return html.escape(text, quote=False)


def from_display(history: list | None) -> list[dict]:
    """The Chatbot's history (escaped for display, content as parts) -> the text that was said."""
    return [{"role": m["role"], "content": html.unescape(content_text(m.get("content")))}
            for m in chat_messages(history)]


def build(ctx, texts: Texts, lang):
    cache = ModelCache()
    texts.add(gr.Markdown, value="ui.chat.intro", elem_classes="tab-intro")
    with gr.Row():
        source = texts.add(gr.Dropdown, choices=lambda code: model_choices(ctx, code), value="demo",
                           label="ui.chat.model", scale=3, elem_id="chat-model")
        refresh = texts.add(gr.Button, value="ui.chat.refresh", size="sm", scale=1)
    with texts.add(gr.Accordion, label="ui.chat.settings", open=False):
        with gr.Row():
            max_new = texts.add(gr.Slider, minimum=8, maximum=512, value=96, step=8, label="ui.chat.max_new")
            temperature = texts.add(gr.Slider, minimum=0, maximum=1.5, value=0, step=0.05,
                                    label="ui.chat.temperature", info="ui.chat.temperature_help")
            top_p = texts.add(gr.Slider, minimum=0.1, maximum=1, value=0.95, step=0.05, label="ui.chat.top_p")
    # Messages are text: no Markdown/HTML rendering of what a user typed or a model produced.
    chatbot = texts.add(gr.Chatbot, label="ui.chat.conversation", height=380, elem_id="chatbot",
                        render_markdown=False, sanitize_html=True)
    with gr.Row():
        box = texts.add(gr.Textbox, placeholder=placeholder, show_label=False, scale=5, elem_id="chat-input")
        send = texts.add(gr.Button, value="ui.chat.send", variant="primary", scale=1, elem_id="chat-send")
    examples = texts.add(gr.Dataset, components=[box], samples=[[q] for q in example_questions("en")],
                         label="ui.chat.examples", elem_id="chat-examples", layout="table",
                         visible=bool(example_questions("en")))
    texts.register(examples, samples=lambda code: [[q] for q in example_questions(code)],
                   visible=lambda code: bool(example_questions(code)))
    clear = texts.add(gr.Button, value="ui.chat.clear", size="sm")

    def respond(message, history, model, max_new_tokens, temp, p, lang_code):
        if not (message or "").strip():
            yield history, message
            return
        shown = list(history or []) + [{"role": "user", "content": as_text(message)},
                                       {"role": "assistant", "content": ""}]
        try:
            for text in chat(ctx, cache, message, from_display(history), model, max_new_tokens, temp, p):
                shown[-1]["content"] = as_text(text)
                yield shown, ""
        except Exception as exc:  # one sentence in the reader's language, never a traceback
            shown[-1]["content"] = as_text(f"⚠ {render(explain(exc), lang_code)}")
            yield shown, ""

    inputs = [box, chatbot, source, max_new, temperature, top_p, lang]
    for trigger in (send.click, box.submit):
        trigger(respond, inputs, [chatbot, box], api_visibility="private")
    examples.click(lambda sample: sample[0] if sample else gr.skip(), examples, box, api_visibility="private")
    clear.click(lambda: [], None, chatbot, api_visibility="private")
    refresh.click(lambda code: gr.update(choices=model_choices(ctx, code)), lang, source,
                  api_visibility="private")

    def select_run(run_id: str, lang_code: str = "en"):
        """Preselect a run (from the Train tab's 'Chat with it')."""
        chosen = run_id if run_id and ctx.has_run(run_id) and ctx.store.get(run_id).output_dir() else "demo"
        return gr.update(choices=model_choices(ctx, lang_code), value=chosen)

    def api_chat(message: str, history: list[dict] | None = None, model: str = "demo",
                 max_new_tokens: int = 96, temperature: float = 0.0) -> str:
        """Answer `message` after `history` (role/content messages, content as text or parts)
        with the base model ("demo") or a finished run (its id). Returns the whole answer."""
        try:
            reply = ""
            for reply in chat(ctx, cache, message, history, model, max_new_tokens, temperature):
                pass
            return reply
        except Exception as exc:
            raise gr.Error(render(explain(exc), "en")) from None

    return {"load": (lambda code: gr.update(choices=model_choices(ctx, code)), [lang], [source]),
            "select_run": (select_run, source), "api_chat": api_chat}
