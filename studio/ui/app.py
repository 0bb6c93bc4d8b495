"""The studio's Gradio app: tabs Data · Train · Evaluate · Chat · Compare · Runs, plus a small HTTP API.

    from studio.ui.app import build_app, launch
    demo = build_app(Workspace(home)); demo.launch()
    launch(home, host="127.0.0.1", port=7860)       # what `studio` runs

One module per tab builds its components from the shared `Workspace`. Internal listeners are
hidden from the API; the public endpoints (`/start_run`, `/stop_run`, `/run_status`,
`/run_metrics`, `/list_runs`) let scripts and `gradio_client` drive the same job manager, and
`/chat` answers a message after a chat history with the base model or a finished run
(`/chat_stream` streams it, with every chat setting). Every
word on the page comes from the translation table (studio/ui/texts.py), in English or Chinese.

In demo mode (studio/demo_mode.py, e.g. on a Hugging Face Space) a banner states the caps, each
browser signs in with a token kept in its localStorage before the tabs load (so every list is
that visitor's own), and a Space without persistent storage says that runs will not survive a
restart.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit

import gradio as gr

from studio.errors import explain
from studio.i18n import DEFAULT, LANGUAGES, Msg, t
from studio.security import AllowedHosts, HostGuard, LaunchPolicy
from studio.startup import warm_up
from studio.ui import arena_tab, chat_tab, data_tab, evaluate_tab, runs_tab, train_tab
from studio.ui.texts import Texts
from studio.workspace import Workspace

CSS = (Path(__file__).resolve().parents[2] / "assets" / "studio.css")

# Gradio's own words (an upload box's "Drop File Here", "Loading…") come from its svelte-i18n
# locale, which it takes from the browser at start. Its core module exports `changeLocale` (what
# its Settings panel calls); the module is found by the URL the page loaded it from, and ES
# modules are one instance per URL, so this sets the page's own locale. Where a Gradio release
# names or exports it differently nothing happens: those words stay in the browser's language.
GRADIO_LOCALES = {"en": "en", "zh": "zh-CN"}
GRADIO_LOCALE_JS = r"""async (code) => {
  const locales = %s;
  const url = performance.getEntriesByType("resource").map((e) => e.name)
    .find((name) => /\/assets\/core-[\w-]+\.js$/.test(name));
  try {
    const core = url && await import(url);
    if (core && typeof core.changeLocale === "function") core.changeLocale(locales[code] || "en");
  } catch (e) { /* Gradio's words stay in the browser's language */ }
  return code;
}""" % json.dumps(GRADIO_LOCALES)


def add_api(ws: Workspace) -> None:
    def start_run(overrides: list[str]) -> dict:
        """Start training with key=value overrides (e.g. ["max_steps=20"]); returns the run id.

        Paths in `model=` and `data=` are checked by `Workspace.start` (the launch policy)."""
        if not isinstance(overrides, list) or not all(isinstance(item, str) for item in overrides):
            raise gr.Error(t("security.api_overrides"))  # a bare string would be read letter by letter
        try:
            run = ws.start(overrides)
        except Exception as exc:  # one plain line for the caller, whatever went wrong
            raise gr.Error(explain(exc).render()) from None
        return {"run_id": run.id, "folder": str(run.path)}  # not "path": clients read that as a file

    def stop_run() -> dict:
        """Stop the active run after its current step; it is saved and marked 'stopped'."""
        run = ws.jobs.stop()
        return {"run_id": run.id if run else None}

    def run_status(run_id: str) -> dict:
        """Progress of one run: state, phase, step, total_steps, ETA, message."""
        try:
            return ws.store.get(run_id).progress()
        except KeyError:
            raise gr.Error(t("security.api_no_run", run_id=str(run_id)[:80])) from None

    def run_metrics(run_id: str, since_step: int = -1) -> list[dict]:
        """Metric events (train loss, eval loss, learning rate, …) with step > since_step."""
        try:
            run = ws.store.get(run_id)
        except KeyError:
            raise gr.Error(t("security.api_no_run", run_id=str(run_id)[:80])) from None
        return [e for e in run.read_metrics() if e.get("step", 0) > since_step]

    def list_runs() -> list[dict]:
        """Every run, newest first."""
        return ws.store.list()

    for fn in (start_run, stop_run, run_status, run_metrics, list_runs):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)


def current_session() -> str | None:
    """The session of the request being handled (None outside a request): Gradio keeps the
    request in a context variable around every handler, so the backend's run store can ask
    whose request it serves without each handler passing it along."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    if request is None:
        return None
    return getattr(request, "session_hash", None) or secrets.token_hex(16)  # no session: nobody's runs


def add_banners(ws: Workspace, texts: Texts) -> None:
    """Demo mode's caps, and a Space whose runs will not survive a restart (translated)."""
    from studio.demo_mode import runs_lost_on_restart
    from studio.estimate import human_bytes, human_count

    if ws.demo is not None:
        texts.add(gr.Markdown, value=Msg("demo.banner", params=human_count(ws.demo.max_params),
                                         steps=ws.demo.max_steps, upload=human_bytes(ws.policy.max_upload_bytes)),
                  elem_id="demo-banner", elem_classes="field-note")
    if runs_lost_on_restart(ws.home):
        texts.add(gr.Markdown, value="demo.storage_warning", elem_id="storage-warning")


def sign_in_visitor(ws: Workspace, demo: gr.Blocks):
    """Demo mode: the browser's visitor token (made here on its first visit, then kept in its
    localStorage) is tied to this page's session before anything else loads. Returns the
    event to chain the page's loads on, or None when visitors are not told apart."""
    if ws.visitors is None:
        return None
    ws.visitors.session_of = current_session
    token = gr.BrowserState("", storage_key="studio-visitor", secret="studio-visitor")

    def sign_in(saved, request: gr.Request):
        return ws.visitors.sign_in(request.session_hash or secrets.token_hex(16), saved)

    return demo.load(sign_in, token, token, api_visibility="private", show_progress="hidden")


def build_app(ws: Workspace) -> gr.Blocks:
    """The page. Every word on it comes from the translation table through one `Texts`
    registry; the language switch (remembered per browser) updates them all at once."""
    if ws.visitors is not None:  # demo mode: the page as built is every visitor's: no one's runs in it
        with ws.visitors.as_nobody():
            return _page(ws)
    return _page(ws)


def _page(ws: Workspace) -> gr.Blocks:
    texts = Texts()
    with gr.Blocks(title="Finetune Studio") as demo:
        saved_lang = gr.BrowserState(DEFAULT, storage_key="studio-language", secret="studio-language")
        signed_in = sign_in_visitor(ws, demo)
        on_load = signed_in.then if signed_in is not None else demo.load  # lists after the sign-in
        with gr.Row(elem_classes="studio-header"):
            texts.add(gr.Markdown, value="ui.app.header", elem_id="studio-title")
            lang = gr.Radio([(name, code) for code, name in LANGUAGES.items()], value=DEFAULT,
                            label="Language · 语言",  # not shown; said by screen readers, in both
                            show_label=False, container=False, elem_id="language", scale=0, min_width=220)
        # Gradio's own words follow the page's language. Registered first: the browser runs a
        # trigger's handlers in registration order, and a tab mounted before this ran keeps
        # Gradio's words in the browser's language (its upload box reads them once, at mount).
        for trigger in (lang.change, demo.load):
            trigger(None, lang, None, js=GRADIO_LOCALE_JS, api_visibility="private", queue=False)
        add_banners(ws, texts)
        with gr.Tabs(selected="train") as tabs:
            with texts.add(gr.Tab, label="ui.tab.data", id="data", elem_id="tab-data"):
                data_slot = gr.Column()
            with texts.add(gr.Tab, label="ui.tab.train", id="train", elem_id="tab-train"):
                train = train_tab.build(ws, tabs, texts, lang)
            with texts.add(gr.Tab, label="ui.tab.evaluate", id="evaluate", elem_id="tab-evaluate"):
                evaluation = evaluate_tab.build(ws, texts, lang)
            with texts.add(gr.Tab, label="ui.tab.chat", id="chat", elem_id="tab-chat") as chat_page:
                chat = chat_tab.build(ws, texts, lang)
            with texts.add(gr.Tab, label="chatui.tab_arena", id="arena", elem_id="tab-arena") as arena_page:
                arena = arena_tab.build(ws, texts, lang, chat["engine"])
            with texts.add(gr.Tab, label="ui.tab.runs", id="runs", elem_id="tab-runs") as runs_page:
                runs = runs_tab.build(ws, texts, lang)
        with data_slot:
            data = data_tab.build(ws, train["fields"], texts, lang, tabs)
        refresh_runs, refresh_inputs, runs_table = runs["refresh"]
        runs_page.select(refresh_runs, refresh_inputs, runs_table, api_visibility="private")
        select_run, chat_source = chat["select_run"]
        for button in train["to_chat"]:
            button.click(select_run, [train["run_id"], lang], chat_source, api_visibility="private")
        # The lists of models follow new runs: redrawn when their tab is selected (and on a timer).
        chat_page.select(*chat["select"], api_visibility="private", show_progress="hidden")
        arena_page.select(*arena["select"], api_visibility="private", show_progress="hidden")
        compare_fn, compare_outputs = arena["compare_run"]
        for button in train["to_compare"]:  # "Compare with the base": the run against its base, blind
            button.click(compare_fn, [train["run_id"], lang], [tabs] + compare_outputs, api_visibility="private")
        select_for_eval, eval_outputs = evaluation["select_run"]
        for button in train["to_eval"]:  # "Evaluate it": the Evaluate tab with that run chosen
            button.click(select_for_eval, [train["run_id"], lang], [tabs] + eval_outputs, api_visibility="private")
        for part in (train, runs, data, chat, arena, evaluation):
            fn, inputs, outputs = part["load"]
            on_load(fn, inputs, outputs, api_visibility="private", show_progress="hidden")
        # What will happen to the preselected data is said before the user touches anything.
        fn, inputs, outputs = train["data_check"]
        on_load(fn, inputs, outputs, api_visibility="private", show_progress="hidden")
        fn, inputs, outputs = train["estimate"]
        on_load(fn, inputs, outputs, api_visibility="private", show_progress="hidden")
        # The browser's remembered language is applied on load; a switch re-words every
        # registered component (and each tab redraws what its handlers wrote).
        demo.load(lambda code: code if code in LANGUAGES and code != DEFAULT else gr.skip(),
                  saved_lang, lang, api_visibility="private", show_progress="hidden")
        texts.wire_language(lang, train["notice"], saved_lang)
        gr.api(chat["api_chat"], api_name="chat")
        gr.api(chat["api_chat_stream"], api_name="chat_stream")  # the same answer, streamed
        add_api(ws)
    demo.texts = texts  # for tests: the registry of translated components
    return demo


def launch(home: Path, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           prevent_thread_lock: bool = False, policy: LaunchPolicy | None = None):
    """Serve the studio. `policy` (from `studio ui`'s flags) wins over `host`/`share`.

    In front of Gradio's routes: a login when the policy has one (Gradio's `auth` guards the page
    and every /gradio_api route), `HostGuard` (Host header and cross-origin writes), the upload
    cap, and no /monitoring dashboard.
    """
    from starlette.middleware import Middleware

    policy = policy or LaunchPolicy(host=host, share=share)
    if policy.warning():
        print(t("cli.warning", message=t(policy.warning())), file=sys.stderr, flush=True)
    ws = Workspace(home, policy)
    demo = build_app(ws)
    warm_up()
    demo.queue(default_concurrency_limit=4)
    hosts = AllowedHosts(policy.host, policy.allowed_hosts)
    result = demo.launch(
        server_name=policy.host, server_port=port, share=policy.share, css_paths=[CSS],
        theme=gr.themes.Soft(primary_hue="indigo"), inbrowser=False, prevent_thread_lock=True,
        footer_links=["api"], auth=policy.auth, auth_message=t("security.login_message"),
        max_file_size=policy.max_upload_bytes, enable_monitoring=False, ssr_mode=False,
        app_kwargs={"middleware": [Middleware(HostGuard, hosts=hosts)]})
    if demo.share_url:  # the tunnel forwards requests with the share link's host name
        hosts.allow(urlsplit(demo.share_url).hostname or "")
    if not prevent_thread_lock:
        demo.block_thread()
    return result
