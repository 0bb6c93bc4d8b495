"""Two training processes started from the studio (torchrun, gloo on CPU), followed through the run
folder like an in-process run, and stopped from the studio: one run, `stopped`, with its adapter."""

import json
from pathlib import Path

from gradio_client import Client

from helpers import fast_overrides, wait_for


def test_two_processes_started_followed_and_stopped_from_the_studio(server):
    client = Client(server.url, verbose=False)
    before = {r["id"] for r in client.predict(api_name="/list_runs")}
    started = client.predict(fast_overrides(max_steps=400, eval_every=0, processes=2), api_name="/start_run")
    rid = started["run_id"]
    try:
        # Progress arrives through status.json and metrics.jsonl, written by rank 0 of the other processes.
        def trained_or_ended():
            status = client.predict(rid, api_name="/run_status")
            return status if status["step"] >= 3 or status["state"] not in ("queued", "running") else None

        progress = wait_for(trained_or_ended, timeout=600)
        assert progress["state"] == "running", progress
        assert any(e["loss"] is not None for e in client.predict(rid, -1, api_name="/run_metrics"))
    finally:
        client.predict(api_name="/stop_run")
    final = wait_for(lambda: (s := client.predict(rid, api_name="/run_status"))["state"]
                     in ("stopped", "completed", "failed", "crashed") and s, timeout=600)
    assert final["state"] == "stopped", final
    assert 3 <= final["step"] < 400, final
    after = {r["id"] for r in client.predict(api_name="/list_runs")}
    assert after - before == {rid}  # one run folder for both processes
    folder = Path(started["folder"])
    assert (folder / "adapter" / "adapter_model.safetensors").is_file()
    events = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    steps = [e["step"] for e in events if e["loss"] is not None]
    assert steps == sorted(set(steps))  # each step recorded once, by rank 0 only
    assert "torch.distributed.run" in (folder / "logs.txt").read_text()
