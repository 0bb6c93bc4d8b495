"""The Train tab with a Hub that never answers: the status line says so, a curated Hub model gets a
sentence under the form instead of a frozen page, the token box never echoes its value, and a
local model still trains."""

import pytest

from helpers import fast_overrides, hung_hub, wait_for


@pytest.fixture(scope="module")
def hung_server(tmp_path_factory):
    """A studio whose HF_ENDPOINT accepts connections and never replies (offline mode off)."""
    from conftest import Server

    with hung_hub() as (endpoint, _), pytest.MonkeyPatch.context() as env:
        env.setenv("HF_ENDPOINT", endpoint)  # the server process copies the environment at start
        env.setenv("HF_HUB_OFFLINE", "0")
        env.setenv("HF_DATASETS_OFFLINE", "0")
        env.delenv("HF_TOKEN", raising=False)
        server = Server(tmp_path_factory.mktemp("hub") / "home")
        yield server
        server.stop()


def text_of(css: str) -> str:
    return f"(document.querySelector('{css}')?.innerText ?? '')"


def test_unreachable_hub_is_said_and_a_hub_model_answers(hung_server, page):
    secret = "hf_" + "NeverShown9" * 3
    page.goto(hung_server.url)
    # Generous bounds: the point is an answer at all, where the Hub's retries took minutes.
    page.wait_for_function(f"() => /cannot be reached/.test({text_of('#hub-status')})", timeout=60000)
    page.fill("#field-model-path input", "HuggingFaceTB/SmolLM2-135M-Instruct")
    page.keyboard.press("Enter")
    page.wait_for_function(
        f"() => /SmolLM2-135M-Instruct.*cannot be reached/s.test({text_of('#data-check')})", timeout=60000)
    page.click("#hub-panel .label-wrap")  # the curated table and the token box
    assert "meta-llama/Llama-3.2-1B-Instruct" in page.inner_text("#hub-models")
    assert page.get_attribute("#hub-token input", "type") == "password"
    page.fill("#hub-token input", secret)
    page.locator("#hub-token input").blur()
    page.wait_for_function(f"() => /given on this page/.test({text_of('#hub-status')})", timeout=30000)
    body = page.evaluate("() => document.body.innerText")
    assert secret not in body
    page.fill("#hub-token input", "")
    page.wait_for_function(f"() => /token: none/.test({text_of('#hub-status')})", timeout=30000)


def test_a_local_model_trains_while_the_hub_hangs(hung_server):
    """Nothing between Start and the first step waits on the Hub: not the check of a local model,
    and not the background import of the training stack (bitsandbytes' import asked the Hub for a
    kernel on AVX-512-BF16 CPUs, which hung the import and every Start behind it)."""
    from gradio_client import Client

    client = Client(hung_server.url, verbose=False)
    start = client.submit(fast_overrides(max_steps=2, eval_every=500), api_name="/start_run")
    rid = start.result(timeout=300)["run_id"]  # it hung here
    state = wait_for(lambda: (s := client.predict(rid, api_name="/run_status")["state"]) != "running" and s,
                     timeout=300, what="the run to end")
    assert state == "completed"
