"""The HTTP API through gradio_client: the same job manager as the button."""


import pytest
from gradio_client import Client

from helpers import fast_overrides, wait_for


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


def test_start_poll_read_metrics_and_stop(client):
    started = client.predict(fast_overrides(max_steps=2000, eval_every=4), api_name="/start_run")
    rid = started["run_id"]
    try:
        with pytest.raises(Exception, match="already in progress"):
            client.predict(fast_overrides(), api_name="/start_run")
        wait_for(lambda: client.predict(rid, api_name="/run_status")["step"] >= 5)
        metrics = client.predict(rid, -1, api_name="/run_metrics")
        assert any(e["loss"] is not None for e in metrics)
        assert any(e["eval_loss"] is not None for e in metrics)
        assert all(e["learning_rate"] is not None for e in metrics if e["loss"] is not None)
        later = client.predict(rid, metrics[-1]["step"], api_name="/run_metrics")
        assert all(e["step"] > metrics[-1]["step"] for e in later)
    finally:
        client.predict(api_name="/stop_run")
    final = wait_for(lambda: (s := client.predict(rid, api_name="/run_status"))["state"] in ("stopped", "completed") and s)
    assert final["state"] == "stopped"
    assert rid in [r["id"] for r in client.predict(api_name="/list_runs")]


def test_bad_values_are_refused_without_a_run(client):
    before = len(client.predict(api_name="/list_runs"))
    with pytest.raises(Exception, match="Learning rate must be at least 0"):
        client.predict(["learning_rate=-0.001"], api_name="/start_run")
    with pytest.raises(Exception, match="Batch size must be at least 1"):
        client.predict(["batch_size=0"], api_name="/start_run")
    with pytest.raises(Exception, match="Seed must be at most 4294967295"):
        client.predict(["seed=99999999999"], api_name="/start_run")
    for not_a_list in ("epochs=1", [1, 2]):  # a bare string was read letter by letter
        with pytest.raises(Exception, match="list of key=value texts"):
            client.predict(not_a_list, api_name="/start_run")
    assert len(client.predict(api_name="/list_runs")) == before


def test_an_overlong_run_id_is_no_run_not_a_crash(client):
    with pytest.raises(Exception, match="No run called 'xxxx"):  # was the file system's "name too long"
        client.predict("x" * 10000, api_name="/run_status")
