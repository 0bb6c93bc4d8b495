"""`studio serve`: an OpenAI-compatible chat-completions endpoint, asked with a plain HTTP client."""

import json
import os
import subprocess
import sys
import threading

import httpx
import pytest

from helpers import ROOT, fast_overrides, free_port, wait_for
from studio.config import StudioConfig, apply_overrides
from studio.infer import generate_answers, load_for_inference
from studio.workspace import Workspace

QUESTION = "What is the opposite of hot?"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve") / "home"
    ws = Workspace(home)
    run = ws.jobs.start(apply_overrides(StudioConfig(), fast_overrides(max_steps=4, eval_every=4, learning_rate=5e-3)))
    ws.jobs.wait(600)
    assert run.status()["state"] == "completed", run.status()["message"]
    return home, run


@pytest.fixture(scope="module")
def server(trained):
    home, run = trained
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "studio", "serve", run.id, "--port", str(port),
                                "--home", str(home)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"

    def up():
        if process.poll() is not None:
            raise AssertionError(process.stdout.read())
        try:
            return httpx.get(url + "/v1/models", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=300, what="studio serve")
        yield url, run
    finally:
        process.terminate()
        process.wait(30)


def expected_answer(run, max_new_tokens=24):
    model, tokenizer = load_for_inference(run.output_dir())
    return generate_answers(model, tokenizer, [[{"role": "user", "content": QUESTION}]], max_new_tokens)[0]


def test_models_and_a_plain_completion(server):
    url, run = server
    models = httpx.get(url + "/v1/models", timeout=30).json()
    assert models["object"] == "list" and models["data"][0]["id"] == run.id
    reply = httpx.post(url + "/v1/chat/completions", timeout=300, json={
        "model": run.id, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 24,
        "temperature": 0}).json()
    assert reply["object"] == "chat.completion"
    choice = reply["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].strip() == expected_answer(run)
    assert choice["finish_reason"] in ("stop", "length")
    assert reply["usage"]["prompt_tokens"] > 0 and reply["usage"]["completion_tokens"] > 0


def test_streaming_sends_sse_chunks_and_done(server):
    url, run = server
    events = []
    with httpx.stream("POST", url + "/v1/chat/completions", timeout=300, json={
            "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 24, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line:
                assert line.startswith("data: ")
                events.append(line[len("data: "):])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert len(chunks) > 3  # streamed in pieces, not one block
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert text.strip() == expected_answer(run)


def test_concurrent_requests_take_turns(server):
    url, run = server
    results = []

    def ask(n):
        reply = httpx.post(url + "/v1/chat/completions", timeout=300, json={
            "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 16, "stream": bool(n % 2)})
        results.append(reply.status_code)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert results == [200] * 4
    assert httpx.get(url + "/v1/models", timeout=30).status_code == 200  # still up


@pytest.mark.parametrize("body, status", [
    ("not json", 400),
    ({"messages": []}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "n": 3}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": 0.7, "seed": 10**30}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4"}, 404),
])
def test_bad_requests_get_openai_style_errors(server, body, status):
    url, _ = server
    content = body if isinstance(body, str) else json.dumps(body)
    reply = httpx.post(url + "/v1/chat/completions", content=content, timeout=60,
                       headers={"Content-Type": "application/json"})
    assert reply.status_code == status
    assert reply.json()["error"]["message"]


def test_foreign_hosts_and_origins_are_refused(server):
    url, _ = server
    assert httpx.get(url + "/v1/models", headers={"Host": "evil.example"}, timeout=30).status_code == 403
    reply = httpx.post(url + "/v1/chat/completions", headers={"Origin": "http://evil.example"}, timeout=30,
                       json={"messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 403


def test_api_key_is_required_when_set(trained):
    from starlette.testclient import TestClient

    from studio.arena import AdapterPool
    from studio.serve import create_app

    home, run = trained
    pool = AdapterPool("demo")
    name = pool.add(run.output_dir())
    client = TestClient(create_app(pool, name, "m", api_key="sekret"), base_url="http://127.0.0.1")
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer sekret"}).json()["data"][0]["id"] == "m"
    stop = client.post("/v1/chat/completions", headers={"Authorization": "Bearer sekret"}, json={
        "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 24})
    full = stop.json()["choices"][0]["message"]["content"]
    marker = full.strip()[2:5]
    cut = client.post("/v1/chat/completions", headers={"Authorization": "Bearer sekret"}, json={
        "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 24, "stop": [marker]}).json()
    assert marker not in cut["choices"][0]["message"]["content"]
    assert cut["choices"][0]["finish_reason"] == "stop"
    assert full.startswith(cut["choices"][0]["message"]["content"])
