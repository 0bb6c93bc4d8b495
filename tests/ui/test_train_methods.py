"""The Train tab's method settings and estimate, and Resume from the Runs tab, in a browser."""

import pytest

from helpers import fast_overrides, real_page_errors, wait_for

pytestmark = pytest.mark.browser


def client_of(server):
    from gradio_client import Client

    return Client(server.url, verbose=False)


def no_run_active(client):
    client.predict(api_name="/stop_run")
    wait_for(lambda: not any(r["state"] in ("queued", "running", "stopping")
                             for r in client.predict(api_name="/list_runs")), what="every run to stop")


def pick_option(page, css: str, option: str):
    page.click(f"{css} input")
    page.locator("ul[role=listbox] li", has_text=option).first.click()


def test_each_method_shows_its_own_settings_and_the_estimate_follows(server, page):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.click("#tab-train-button")
    page.wait_for_selector("#train-estimate", state="attached", timeout=30000)
    page.wait_for_function("() => (document.querySelector('#train-estimate')?.innerText ?? '').includes('trainable')",
                           timeout=60000)
    lora_estimate = page.inner_text("#train-estimate")
    assert "peak memory" in lora_estimate and "steps" in lora_estimate
    page.click("#group-method .label-wrap")
    page.wait_for_selector("#field-method-lora_r", state="visible")
    page.wait_for_selector("#field-method-num_virtual_tokens", state="hidden")
    pick_option(page, "#field-method-method", "prefix")
    page.wait_for_selector("#field-method-num_virtual_tokens", state="visible", timeout=15000)
    page.wait_for_selector("#field-method-lora_r", state="hidden")
    page.wait_for_function("(before) => (document.querySelector('#train-estimate')?.innerText ?? '') !== before",
                           arg=lora_estimate, timeout=60000)  # prefix tuning trains another number
    page.locator("#field-method-stage label", has_text="dpo").click()
    page.wait_for_selector("#field-method-dpo_beta", state="visible", timeout=15000)
    pick_option(page, "#field-method-method", "lora")
    page.wait_for_selector("#field-method-lora_r", state="visible", timeout=15000)
    page.locator("#field-method-stage label", has_text="sft").click()
    page.wait_for_selector("#field-method-dpo_beta", state="hidden", timeout=15000)
    assert real_page_errors(errors) == []


def test_a_stopped_run_resumes_from_the_runs_tab(server, page):
    client = client_of(server)
    no_run_active(client)
    run_id = client.predict(fast_overrides(max_steps=400, eval_every=5, save_every=5), api_name="/start_run")["run_id"]
    # stop once a few steps (and so a checkpoint) are behind it
    wait_for(lambda: (client.predict(run_id, api_name="/run_status").get("step") or 0) >= 6, timeout=600,
             what="a few steps")
    client.predict(api_name="/stop_run")
    wait_for(lambda: client.predict(run_id, api_name="/run_status")["state"] == "stopped", timeout=600,
             what="the run to stop")
    stopped_at = client.predict(run_id, api_name="/run_status")["step"]

    page.goto(server.url)
    page.click("#tab-runs-button")
    page.wait_for_selector("#tab-runs", state="visible")
    cell = page.locator("#runs-table").get_by_text(run_id, exact=True).locator("visible=true").first
    cell.wait_for(timeout=30000)
    cell.click()
    page.wait_for_function("() => /from step \\d+/.test((document.querySelector('#resume-note textarea')?.value ?? ''))",
                           timeout=30000)
    note = page.input_value("#resume-note textarea")
    assert f"from step {stopped_at} of" in note, note  # the stop saved a checkpoint at its step
    page.click("#resume-button")
    page.wait_for_function("() => /Resumed/.test((document.querySelector('#resume-note textarea')?.value ?? ''))",
                           timeout=60000)
    wait_for(lambda: (client.predict(run_id, api_name="/run_status").get("step") or 0) > stopped_at,
             timeout=600, what="training to go on past the stop")
    client.predict(api_name="/stop_run")
    wait_for(lambda: client.predict(run_id, api_name="/run_status")["state"] in ("stopped", "completed"),
             timeout=600, what="the resumed run to end")
