"""Chat tab (the playground): talk to a base model, or to a base with a finished run's adapter.

    parts = build(ws, texts, lang)          # inside a gr.Tab; parts["engine"] is shared with the arena
    reply = chat(ws, engine, "What is the opposite of hot?", history, model="demo")    # also /chat
    for text in stream(ws, engine, "demo", "", messages, ChatSettings()): ...           # /chat_stream

Models are named, never pointed at by path from the page: a base is "demo", a base some run was
trained on, or a Hub id (checked by `Workspace.resolve_user_path`); an adapter is a run id looked
up in the run store. Every LoRA adapter is attached to one shared base (`studio.arena.Arena`, the
same engine the A/B arena uses), so switching adapters costs no reload. Other adapter kinds
(prefix, prompt tuning...) load on their own, from safetensors only.

Lists follow new runs without a manual refresh: a timer compares `RunStore.signature()` with the
one last drawn and redraws only when it changed (and the tab redraws when selected); a chosen run
that was deleted meanwhile is unchosen by that redraw.

Messages are text, never HTML: what was typed or generated is escaped for the Chatbot (which
renders sanitised HTML even with Markdown off) and unescaped when read back. Stop ends the answer
after the current token (a per-session flag the generation checks); Regenerate asks the last
question again. While a training run holds the device, a line says so and answers still come
(slower); a failure is one sentence in the conversation, never a traceback.
"""

from __future__ import annotations

import html
import json
import threading

import gradio as gr

from studio.arena import BASE, Arena
from studio.errors import UserError, explain
from studio.i18n import render, t
from studio.infer import ChatSettings, Generation, ModelCache, chat_messages, content_text, require_safetensors
from studio.paths import ASSETS
from studio.ui.texts import Texts

EXAMPLES = ASSETS / "data" / "demo_examples.json"
REFRESH_SECONDS = 5


class StopFlag:
    """A session's Stop button: ends the generation in progress (each generation gets a fresh
    event, so a Stop pressed for one answer never ends the next) and remembers that Stop was pressed."""

    def __init__(self):
        self.stopped = False
        self.current = threading.Event()

    def next(self) -> threading.Event:
        self.current = threading.Event()
        if self.stopped:
            self.current.set()
        return self.current

    def set(self) -> None:
        self.stopped = True
        self.current.set()


_cancels: dict[str, StopFlag] = {}  # session -> the Stop flag of its answer(s) in progress


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


# --- what can be chosen ------------------------------------------------------------------------------

def finished_runs(ws) -> list[dict]:
    """Runs with something to chat with (completed or stopped, adapter or model saved), newest first."""
    return [r for r in ws.store.list() if r["output"] and r["state"] in ("completed", "stopped")]


def run_label(row: dict, lang: str | None = None) -> str:
    """A run in a list: its id (which holds its data and method), state, and label if it has one."""
    label = f" · {row['label']}" if row.get("label") else ""
    return f"{row['id']} · {t('state.' + row['state'], lang)}{label}"


def model_choices(ws, lang: str | None = None) -> list[tuple[str, str]]:
    """The /chat API's model list: the base ("demo") and finished runs by id."""
    return [(t("ui.chat.base_model", lang), "demo")] + [(run_label(r, lang), r["id"]) for r in finished_runs(ws)]


def base_choices(ws, lang: str | None = None) -> list[tuple[str, str]]:
    """The bundled base and every base a run was trained on (each once)."""
    choices, seen = [(t("ui.chat.base_model", lang), "demo")], {"demo"}
    for row in ws.store.list():
        base = row.get("model") or ""
        if base and base not in seen:
            seen.add(base)
            choices.append((base, base))
    return choices


def adapter_choices(ws, lang: str | None = None) -> list[tuple[str, str]]:
    return [(t("chatui.no_adapter", lang), "")] + [(run_label(r, lang), r["id"]) for r in finished_runs(ws)]


def run_base(ws, run_id: str) -> str:
    try:
        return ws.store.get(run_id).config().model.path or "demo"
    except Exception:
        return "demo"


# --- loading and generating --------------------------------------------------------------------------

def _same_model(ws, a: str, b: str) -> bool:
    from studio.paths import resolve_model_path

    return a == b or str(resolve_model_path(a)) == str(resolve_model_path(b))


def resolve(ws, engine: Arena, base: str, adapter: str = ""):
    """(pool, adapter name) for a base (+ a run's adapter). A run's adapter on another base is
    attached there only if it fits (else one sentence naming both bases)."""
    base = (base or "demo").strip()
    if not adapter:
        return engine.pool(ws.resolve_user_path(base, "model")), BASE
    if not ws.has_run(adapter):
        raise UserError("ui.chat.unknown_model", model=str(adapter)[:80])
    output, trained_on = engine.run_output(adapter)
    if _same_model(ws, base, trained_on or "demo") or not (output / "adapter_config.json").exists():
        return engine.resolve("run:" + adapter)  # its own base (or a full model: no base needed)
    pool = engine.pool(ws.resolve_user_path(base, "model"))
    return pool, pool.add(output)


def stream(ws, engine: Arena, base: str, adapter: str, messages: list[dict], settings: ChatSettings,
           cancel: threading.Event | None = None, cache: ModelCache | None = None):
    """Yield the growing answer of base (+ adapter) to `messages`."""
    try:
        pool, name = resolve(ws, engine, base, adapter)
    except UserError as exc:
        if exc.msg.code != "arena.adapter_kind" or cache is None:
            raise
        # not a LoRA (prefix/prompt tuning...): its own copy, loaded from safetensors only
        output, _ = engine.run_output(adapter)
        model, tokenizer = cache.get(str(require_safetensors(output, "adapter")))
        yield from Generation(model, tokenizer, messages, settings, cancel)
        return
    yield from pool.stream(name, messages, settings, cancel)


def api_model(ws, model: str) -> tuple[str, str]:
    """The /chat API's `model` ("demo" or a run id) -> (base, adapter); anything else is refused."""
    if not model or model == "demo":
        return "demo", ""
    if ws.has_run(model) and ws.store.get(model).output_dir() is not None:
        return run_base(ws, model), model
    raise UserError("ui.chat.unknown_model", model=str(model)[:80])


def chat(ws, engine: Arena, message: str, history: list | None = None, model: str = "demo",
         max_new_tokens: int = 96, temperature: float = 0.0, top_p: float = 0.95, cache: ModelCache | None = None):
    """Yield the growing answer to `message` after `history` (role/content messages)."""
    base, adapter = api_model(ws, model)
    messages = chat_messages(history) + [{"role": "user", "content": message}]
    settings = ChatSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p or 1.0)
    yield from stream(ws, engine, base, adapter, messages, settings, cache=cache)


def stop_sequences(text: str) -> list[str]:
    """One stop sequence per line; a typed \\n stands for a line break."""
    return [line.replace("\\n", "\n") for line in (text or "").splitlines() if line.strip()]


def settings_of(max_new, temperature, top_p, top_k, penalty, stops) -> ChatSettings:
    return ChatSettings(max_new_tokens=max_new, temperature=temperature, top_p=top_p or 1.0, top_k=top_k or 0,
                        repetition_penalty=penalty or 1.0, stop=stop_sequences(stops))


def busy_note(ws, lang: str) -> str:
    """A line saying a training run holds the device ('' when none does)."""
    run = ws.jobs.active_run()
    return f"⏳ {t('chatui.training_busy', lang, run=run.id)}" if run is not None else ""


# --- display -----------------------------------------------------------------------------------------

def as_text(text: str) -> str:
    """What was typed or generated, escaped so the Chatbot shows it as text: gradio's Chatbot
    renders messages as (sanitised) HTML even with Markdown off, so a typed `<img src=…>`
    would become an image. html.unescape gives back exactly the original."""
    return html.escape(text, quote=False)


def from_display(history: list | None) -> list[dict]:
    """The Chatbot's history (escaped for display, content as parts) -> the text that was said."""
    return [{"role": m["role"], "content": html.unescape(content_text(m.get("content")))}
            for m in chat_messages(history)]


def settings_controls(texts: Texts, prefix: str):
    """The generation settings (shared by the playground and the arena), in an accordion."""
    with texts.add(gr.Accordion, label="ui.chat.settings", open=False):
        with gr.Row():
            max_new = texts.add(gr.Slider, minimum=8, maximum=1024, value=96, step=8, label="ui.chat.max_new",
                                elem_id=f"{prefix}-max-new")
            temperature = texts.add(gr.Slider, minimum=0, maximum=2, value=0, step=0.05,
                                    label="ui.chat.temperature", info="ui.chat.temperature_help")
            top_p = texts.add(gr.Slider, minimum=0.05, maximum=1, value=0.95, step=0.05, label="ui.chat.top_p",
                              info="chatui.top_p_help")
        with gr.Row():
            top_k = texts.add(gr.Slider, minimum=0, maximum=200, value=0, step=1, label="chatui.top_k",
                              info="chatui.top_k_help")
            penalty = texts.add(gr.Slider, minimum=1, maximum=2, value=1, step=0.05,
                                label="chatui.repetition_penalty", info="chatui.repetition_penalty_help")
            stops = texts.add(gr.Textbox, label="chatui.stop", info="chatui.stop_help", lines=2, max_lines=8,
                              elem_id=f"{prefix}-stop")
    return [max_new, temperature, top_p, top_k, penalty, stops]


def build(ws, texts: Texts, lang):
    engine = Arena(ws.store, max_bases=2, trust_remote_code=ws.policy.allow_remote_code)
    cache = ModelCache(size=1)
    texts.add(gr.Markdown, value="chatui.intro", elem_classes="tab-intro")
    with gr.Row():
        base = texts.add(gr.Dropdown, choices=lambda code: base_choices(ws, code), value="demo",
                         label="chatui.base", info="chatui.base_help", allow_custom_value=True, scale=2,
                         elem_id="chat-base")
        # allow_custom_value: a deleted run's id must reach the redraw that unchooses it (Gradio
        # would refuse it against the new choices first); the handlers check ids themselves.
        source = texts.add(gr.Dropdown, choices=lambda code: adapter_choices(ws, code), value="",
                           allow_custom_value=True, label="chatui.adapter", info="chatui.adapter_help", scale=3, elem_id="chat-model")
    system = texts.add(gr.Textbox, label="chatui.system", placeholder="chatui.system_placeholder", lines=1,
                       max_lines=6, elem_id="chat-system")
    controls = settings_controls(texts, "chat")
    note = gr.Markdown("", elem_id="chat-note", elem_classes="field-note")
    # Messages are text: no Markdown/HTML rendering of what a user typed or a model produced.
    chatbot = texts.add(gr.Chatbot, label="ui.chat.conversation", height=380, elem_id="chatbot",
                        render_markdown=False, sanitize_html=True)
    with gr.Row():
        box = texts.add(gr.Textbox, label="chatui.message_label", placeholder=placeholder, show_label=False, scale=5,
                        elem_id="chat-input")
        send = texts.add(gr.Button, value="ui.chat.send", variant="primary", scale=1, elem_id="chat-send")
    with gr.Row():
        stop = texts.add(gr.Button, value="chatui.stop_button", size="sm", elem_id="chat-stop")
        regenerate = texts.add(gr.Button, value="chatui.regenerate", size="sm", elem_id="chat-regenerate")
        clear = texts.add(gr.Button, value="ui.chat.clear", size="sm", elem_id="chat-clear")
    examples = texts.add(gr.Dataset, components=[box], samples=[[q] for q in example_questions("en")],
                         label="ui.chat.examples", elem_id="chat-examples", layout="table",
                         visible=bool(example_questions("en")))
    texts.register(examples, samples=lambda code: [[q] for q in example_questions(code)],
                   visible=lambda code: bool(example_questions(code)))
    from studio.ui import export_panel

    export = export_panel.build(ws, texts, lang, source, base, system)
    signature = gr.State(None)
    timer = gr.Timer(REFRESH_SECONDS)

    def respond(message, history, base_id, adapter, system_text, max_new, temp, p, k, penalty, stops, lang_code,
                request: gr.Request):
        if not (message or "").strip():
            yield history, message, gr.skip()
            return
        shown = list(history or []) + [{"role": "user", "content": as_text(message)},
                                       {"role": "assistant", "content": ""}]
        note = busy_note(ws, lang_code)
        yield shown, "", note
        session = getattr(request, "session_hash", None) or "?"
        flag = _cancels[session] = StopFlag()
        try:
            settings = settings_of(max_new, temp, p, k, penalty, stops)
            messages = ([{"role": "system", "content": system_text}] if (system_text or "").strip() else [])
            messages += from_display(history) + [{"role": "user", "content": message}]
            for text in stream(ws, engine, base_id, adapter, messages, settings, flag.next(), cache):
                shown[-1]["content"] = as_text(text)
                yield shown, "", note  # (the same note each time: a skipped value could linger after)
            yield shown, "", busy_note(ws, lang_code)
        except Exception as exc:  # one sentence in the reader's language, never a traceback
            shown[-1]["content"] = as_text(f"⚠ {render(explain(exc), lang_code)}")
            yield shown, "", busy_note(ws, lang_code)
        finally:
            if _cancels.get(session) is flag:
                _cancels.pop(session, None)

    def stop_answer(request: gr.Request):
        event = _cancels.get(getattr(request, "session_hash", None) or "?")
        if event is not None:
            event.set()

    def again(history, base_id, adapter, system_text, max_new, temp, p, k, penalty, stops, lang_code,
              request: gr.Request):
        """Ask the last question again: the last user turn and what followed are taken back."""
        turns = list(history or [])
        last = max((i for i, m in enumerate(turns) if isinstance(m, dict) and m.get("role") == "user"), default=None)
        if last is None:
            yield history, "", gr.skip()
            return
        question = html.unescape(content_text(turns[last].get("content")))
        yield from respond(question, turns[:last], base_id, adapter, system_text, max_new, temp, p, k, penalty,
                           stops, lang_code, request)

    settings_inputs = [base, source, system, *controls, lang]
    for trigger in (send.click, box.submit):
        trigger(respond, [box, chatbot, *settings_inputs], [chatbot, box, note], api_visibility="private")
    regenerate.click(again, [chatbot, *settings_inputs], [chatbot, box, note], api_visibility="private")
    stop.click(stop_answer, None, None, api_visibility="private", queue=False)
    examples.click(lambda sample: sample[0] if sample else gr.skip(), examples, box, api_visibility="private")
    clear.click(lambda: ([], ""), None, [chatbot, note], api_visibility="private")

    def pick_adapter(adapter, current_base):
        """An adapter chosen: its own base comes with it (another base can still be chosen after)."""
        return run_base(ws, adapter) if adapter else current_base

    source.input(pick_adapter, [source, base], base, api_visibility="private")

    def redraw(code, adapter=""):
        """Fresh lists; a chosen run that is no longer listed (deleted) is unchosen, so the next
        event does not send a value the list no longer has (the value is sent only then)."""
        adapters = adapter_choices(ws, code)
        gone = bool(adapter) and adapter not in {value for _, value in adapters}
        return (gr.update(choices=base_choices(ws, code)),
                gr.update(choices=adapters, **({"value": ""} if gone else {})), ws.store.signature())

    def poll(code, adapter, seen):
        """Redraw the lists only when a run was added or changed state since the last drawing."""
        now = ws.store.signature()
        return redraw(code, adapter) if now != seen else (gr.skip(), gr.skip(), gr.skip())

    timer.tick(poll, [lang, source, signature], [base, source, signature], api_visibility="private",
               show_progress="hidden", queue=False)

    def select_run(run_id: str, lang_code: str = "en"):
        """Preselect a run (from the Train tab's 'Chat with it')."""
        ready = run_id and ws.has_run(run_id) and ws.store.get(run_id).output_dir()
        chosen = run_id if ready else ""
        return (gr.update(choices=adapter_choices(ws, lang_code), value=chosen),
                gr.update(choices=base_choices(ws, lang_code), value=run_base(ws, chosen) if chosen else "demo"))

    def api_chat(message: str, history: list[dict] | None = None, model: str = "demo",
                 max_new_tokens: int = 96, temperature: float = 0.0) -> str:
        """Answer `message` after `history` (role/content messages, content as text or parts)
        with the base model ("demo") or a finished run (its id). Returns the whole answer."""
        try:
            reply = ""
            for reply in chat(ws, engine, message, history, model, max_new_tokens, temperature, cache=cache):
                pass
            return reply
        except Exception as exc:
            raise gr.Error(render(explain(exc), "en")) from None

    def api_chat_stream(message: str, history: list[dict] | None = None, model: str = "demo", system: str = "",
                        max_new_tokens: int = 96, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
                        repetition_penalty: float = 1.0, stop: list[str] | None = None) -> str:
        """Stream the answer to `message` after `history` (each event: the answer so far) from the
        base model ("demo") or a finished run (its id), with a system prompt, sampling settings and
        stop sequences."""
        try:
            base_id, adapter = api_model(ws, model)
            settings = ChatSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p or 1.0,
                                    top_k=top_k or 0, repetition_penalty=repetition_penalty or 1.0,
                                    stop=tuple(stop or ()))
            messages = ([{"role": "system", "content": system}] if (system or "").strip() else [])
            messages += chat_messages(history) + [{"role": "user", "content": message}]
            yield ""
            for text in stream(ws, engine, base_id, adapter, messages, settings, cache=cache):
                yield text
        except Exception as exc:
            raise gr.Error(render(explain(exc), "en")) from None

    def load(code, system_text):
        base_update, source_update, seen = redraw(code)
        return (base_update, source_update, seen, busy_note(ws, code),
                *export["show_code"]("", "demo", system_text))

    return {"load": (load, [lang, system], [base, source, signature, note, *export["code_outputs"]]),
            "select": (redraw, [lang, source], [base, source, signature]),
            "select_run": (select_run, [source, base]),
            "api_chat": api_chat, "api_chat_stream": api_chat_stream, "engine": engine, "export": export}
