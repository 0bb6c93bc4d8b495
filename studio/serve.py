"""`studio serve RUN`: a fine-tuned model as an OpenAI-compatible chat-completions HTTP endpoint.

    studio serve 20250101-120000-demo-en-lora-ab12 --port 8000      # bound to 127.0.0.1
    curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
         -d '{"messages": [{"role": "user", "content": "Hi"}], "stream": true}'

    app = create_app(pool, BASE_OR_ADAPTER_NAME, model_id="my-run")   # the ASGI app, for tests

Routes: `GET /v1/models`, `POST /v1/chat/completions` (`messages`, `stream`, `temperature`,
`top_p`, `max_tokens` / `max_completion_tokens`, `stop`, `seed`; streaming sends SSE
`data: {chunk}` events and `data: [DONE]`). Existing OpenAI clients work by pointing their base
URL at `http://127.0.0.1:PORT/v1`. One answer is generated at a time (a lock; others wait their
turn), so concurrent clients queue instead of crashing the model. A client that disconnects
mid-stream stops its generation. Bad requests get OpenAI-style `{"error": {...}}` bodies with 400.
The Host/Origin guard of the UI (studio/security.py) is in front, and an optional API key
(`--api-key` or $STUDIO_API_KEY) is required as `Authorization: Bearer KEY` when set.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
import time
import uuid

from fastapi import Request  # at module level: FastAPI resolves the handlers' annotations here

from studio.errors import UserError
from studio.i18n import t
from studio.infer import ChatSettings, chat_messages
from studio.paths import expand_user

API_KEY_ENV = "STUDIO_API_KEY"
MAX_BODY = 4 * 1024 ** 2  # a chat request larger than this is refused before it is parsed


def _error(status: int, message: str, kind: str = "invalid_request_error"):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}},
                        status_code=status)


def _settings(body: dict) -> ChatSettings:
    """The request's sampling fields -> ChatSettings (UserError on a bad value)."""
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, (str, list)):
        raise UserError("serve.bad_field", field="stop")
    if body.get("n") not in (None, 1):
        raise UserError("serve.only_one_choice")
    fields = {"temperature": body.get("temperature"), "top_p": body.get("top_p"),
              "max_new_tokens": max_tokens, "stop": stop, "seed": body.get("seed"),
              "top_k": body.get("top_k"), "repetition_penalty": body.get("repetition_penalty")}
    for name, value in fields.items():
        if name != "stop" and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UserError("serve.bad_field", field=name)
    defaults = ChatSettings(max_new_tokens=256, temperature=0.0, top_p=1.0)
    return ChatSettings(
        max_new_tokens=fields["max_new_tokens"] if fields["max_new_tokens"] is not None else defaults.max_new_tokens,
        temperature=fields["temperature"] if fields["temperature"] is not None else defaults.temperature,
        top_p=fields["top_p"] if fields["top_p"] is not None else defaults.top_p,
        top_k=fields["top_k"] or 0, repetition_penalty=fields["repetition_penalty"] or 1.0,
        stop=tuple(stop) if isinstance(stop, list) else (stop or ()), seed=fields["seed"])


def _messages(body: dict) -> list[dict]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise UserError("serve.no_messages")
    if any(not isinstance(m, dict) for m in raw):
        raise UserError("serve.bad_field", field="messages")
    messages = chat_messages(raw)
    if not messages or messages[-1]["role"] != "user":
        raise UserError("serve.last_not_user")
    return messages


def create_app(pool, adapter: str, model_id: str, api_key: str | None = None, host: str = "127.0.0.1"):
    """The FastAPI app serving adapter `adapter` of AdapterPool `pool` under the name `model_id`."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.middleware import Middleware

    from studio.security import AllowedHosts, HostGuard

    created = int(time.time())
    app = FastAPI(title="studio serve", docs_url=None, redoc_url=None, openapi_url=None,
                  middleware=[Middleware(HostGuard, hosts=AllowedHosts(host))])

    def refused(request: Request):
        if not api_key:
            return None
        sent = request.headers.get("authorization", "")
        if not secrets.compare_digest(sent.encode(), f"Bearer {api_key}".encode()):
            return _error(401, t("serve.bad_key", "en"), "authentication_error")
        return None

    @app.get("/v1/models")
    async def models(request: Request):
        if (denied := refused(request)) is not None:
            return denied
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": created,
                                            "owned_by": "studio"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        if (denied := refused(request)) is not None:
            return denied
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _error(413, t("serve.too_large", "en"))
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            return _error(400, t("serve.bad_json", "en"))
        try:
            messages, settings = _messages(body), _settings(body)
        except UserError as exc:
            return _error(400, exc.render("en"))
        if body.get("model") not in (None, "", model_id):
            return _error(404, t("serve.unknown_model", "en", model=str(body.get("model"))[:80], served=model_id),
                          "model_not_found")
        request_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if body.get("stream"):
            return StreamingResponse(_stream(request, messages, settings, request_id),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        generation = await asyncio.to_thread(_complete, messages, settings)
        return JSONResponse({
            "id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": generation.text},
                         "finish_reason": generation.finish_reason}],
            "usage": {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
                      "total_tokens": generation.prompt_tokens + generation.completion_tokens}})

    def _complete(messages, settings):
        from studio.infer import Generation

        with pool.using(adapter) as model:  # one generation at a time
            generation = Generation(model, pool.tokenizer, messages, settings)
            for _ in generation:
                pass
        return generation

    async def _stream(request, messages, settings, request_id):
        from studio.infer import Generation

        cancel = threading.Event()
        chunks: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        holder = {}

        def produce():
            try:
                with pool.using(adapter) as model:  # one generation at a time
                    if cancel.is_set():
                        return
                    generation = holder["g"] = Generation(model, pool.tokenizer, messages, settings, cancel)
                    sent = ""
                    for text in generation:
                        loop.call_soon_threadsafe(chunks.put_nowait, ("delta", text[len(sent):]))
                        sent = text
                    loop.call_soon_threadsafe(chunks.put_nowait, ("end", generation.finish_reason))
            except BaseException as exc:  # reported in the stream, never a crashed server
                loop.call_soon_threadsafe(chunks.put_nowait, ("error", str(exc)[:300] or type(exc).__name__))

        def event(delta: dict, finish=None) -> str:
            chunk = {"id": request_id, "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model_id, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

        worker = threading.Thread(target=produce, name="serve-generate", daemon=True)
        worker.start()
        try:
            yield event({"role": "assistant", "content": ""})
            while True:
                kind, value = await chunks.get()
                if kind == "delta":
                    if value:
                        yield event({"content": value})
                elif kind == "end":
                    yield event({}, value)
                    break
                else:
                    error = {"error": {"message": value, "type": "server_error", "param": None, "code": None}}
                    yield f"data: {json.dumps(error)}\n\n"
                    break
            yield "data: [DONE]\n\n"
        finally:
            cancel.set()  # the client went away (or we are done): stop generating for it

    return app


def serve(source: str, home, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          trust_remote_code: bool = False) -> int:
    """Load `source` (a run id, "demo", or a folder) and serve it until Ctrl+C."""
    import uvicorn

    from studio.security import is_loopback

    pool, adapter, model_id = load_source(source, home, trust_remote_code)
    api_key = api_key or os.environ.get(API_KEY_ENV) or None
    app = create_app(pool, adapter, model_id, api_key=api_key, host=host)
    print(t("serve.listening", url=f"http://{host}:{port}/v1", model=model_id), flush=True)
    if not is_loopback(host) and not api_key:
        print(t("serve.exposed_without_key", host=host), flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0


def load_source(source: str, home, trust_remote_code: bool = False):
    """(AdapterPool, adapter name, model id) for a run id, a base model name or a local folder."""
    from pathlib import Path

    from studio.arena import Arena
    from studio.runs import RunStore

    store = RunStore(home)
    arena = Arena(store, trust_remote_code=trust_remote_code, allow_paths=True)
    text = (source or "").strip()
    try:
        store.get(text)
        model_id, label = f"run:{text}", text
    except KeyError:
        model_id = label = text
        if (folder := expand_user(text)).is_dir():
            model_id, label = str(folder.resolve()), Path(text).name
    pool, adapter = arena.resolve(model_id)
    return pool, adapter, label
