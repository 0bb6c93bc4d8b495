"""Real training through TRL/PEFT on the bundled demo model (CPU, a handful of steps)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from helpers import fast_overrides
from studio.errors import UserError
from studio.workspace import Workspace


def train(ws: Workspace, overrides: list[str], timeout: float = 300):
    run = ws.start(overrides)
    ws.jobs.wait(timeout)
    assert not ws.jobs.busy(), "training did not finish in time"
    return run


def mean(values):
    return sum(values) / len(values)


def test_lora_demo_loss_falls_and_run_folder_is_complete(home):
    ws = Workspace(home)
    run = train(ws, fast_overrides(max_steps=24, eval_every=8, batch_size=8, learning_rate=2e-3,
                                   max_samples=0))
    status = run.status()
    assert status["state"] == "completed", status["message"]
    events = run.read_metrics()
    losses = [e["loss"] for e in events if e["loss"] is not None]
    assert len(losses) == 24
    assert mean(losses[-4:]) < mean(losses[:4]) * 0.8, losses
    assert [e["step"] for e in events if e["eval_loss"] is not None] == [8, 16, 24]
    assert all(e["learning_rate"] is not None and e["tokens"] > 0 for e in events if e["loss"] is not None)
    assert (run.path / "adapter" / "adapter_model.safetensors").is_file()
    assert (run.path / "config.yaml").is_file() and (run.path / "logs.txt").is_file()
    assert run.config().method.method == "lora"
    sizes = [len((run.path / "data" / f"{s}.jsonl").read_text().splitlines()) for s in ("train", "val", "test")]
    assert sizes[0] > sizes[1] > sizes[2] > 0


@pytest.mark.parametrize("bits", [4, 8])
def test_qlora_trains_on_cpu(home, bits):
    run = train(Workspace(home), fast_overrides(method="qlora", quant_bits=bits, max_steps=3))
    assert run.status()["state"] == "completed", run.status()["message"]
    assert (run.path / "adapter" / "adapter_model.safetensors").is_file()
    assert f"quantized {bits}-bit" in (run.path / "logs.txt").read_text()


@pytest.mark.parametrize("method", ["full", "freeze"])
def test_full_and_freeze_save_a_model(home, method):
    run = train(Workspace(home), fast_overrides(method=method, max_steps=3, learning_rate=1e-4))
    assert run.status()["state"] == "completed", run.status()["message"]
    assert (run.path / "model" / "model.safetensors").is_file()


def test_freeze_trains_only_the_last_layers():
    from transformers import AutoModelForCausalLM

    from studio.models import freeze_all_but_last_layers
    from studio.paths import DEMO_MODEL

    model = AutoModelForCausalLM.from_pretrained(DEMO_MODEL)
    freeze_all_but_last_layers(model, 1)
    last = model.config.num_hidden_layers - 1
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(f".layers.{last}." in n for n in trainable)


def test_stop_mid_run_saves_and_marks_stopped(home):
    ws = Workspace(home)
    run = ws.start(fast_overrides(max_steps=2000, eval_every=1000))
    deadline = time.time() + 120
    while (run.status().get("step") or 0) < 2 and time.time() < deadline:
        time.sleep(0.2)
    ws.jobs.stop()
    ws.jobs.wait(120)
    status = run.status()
    assert status["state"] == "stopped" and status["step"] < 2000
    assert (run.path / "adapter" / "adapter_model.safetensors").is_file()
    assert run.read_metrics()


def test_second_start_is_refused_while_training(home):
    ws = Workspace(home)
    run = ws.start(fast_overrides(max_steps=2000, eval_every=1000))
    try:
        with pytest.raises(UserError, match="already in progress"):
            ws.start(fast_overrides())
        assert len(list((home / "runs").iterdir())) == 1
    finally:
        ws.jobs.stop()
        ws.jobs.wait(120)
    assert run.status()["state"] == "stopped"


def test_failing_run_is_marked_failed_and_the_manager_keeps_working(home, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "", "output": ""}] * 5))
    ws = Workspace(home)
    failed = train(ws, fast_overrides(data=str(bad)))
    status = failed.status()
    assert status["state"] == "failed" and "No usable rows" in status["message"]
    assert "Traceback" in (failed.path / "logs.txt").read_text()
    ok = train(ws, fast_overrides(max_steps=2))
    assert ok.status()["state"] == "completed"


def test_aidreams_fixture_model_learns_the_fixture_data(home, shared):
    ws = Workspace(home)
    run = train(ws, [f"model={shared / 'models' / 'aidreams-260k'}",
                     f"data={shared / 'data' / 'alpaca_en_demo.json'}",
                     "max_samples=120", "max_steps=20", "batch_size=4", "max_length=128",
                     "learning_rate=2e-3", "eval_every=10"])
    assert run.status()["state"] == "completed", run.status()["message"]
    losses = [e["loss"] for e in run.read_metrics() if e["loss"] is not None]
    assert mean(losses[-5:]) < mean(losses[:5]), losses


def test_cli_train_writes_the_same_run_folder(home):
    out = subprocess.run(
        [sys.executable, "-m", "studio", "train", "recipes/demo.yaml", *fast_overrides(max_steps=4),
         "--home", str(home)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "step 4/4" in out.stdout and "loss" in out.stdout and "completed:" in out.stdout
    listed = subprocess.run([sys.executable, "-m", "studio", "runs", "--json", "--home", str(home)],
                            capture_output=True, text=True, timeout=120)
    (row,) = json.loads(listed.stdout)
    assert row["state"] == "completed" and row["name"] == "demo"
    assert Path(row["output"], "adapter_model.safetensors").is_file()


def test_opening_a_home_marks_runs_of_a_killed_studio_crashed(home):
    from studio.config import StudioConfig
    from studio.runs import RunStore

    orphan = RunStore(home).create(StudioConfig())
    orphan.update_status(state="running", phase="training", pid=2**22 + 4321)  # no such process
    orphan.append_metric({"step": 1, "loss": 2.0})
    ws = Workspace(home)  # what `studio ui` does at start
    assert ws.crashed == [orphan.id]
    assert orphan.status()["state"] == "crashed" and orphan.read_metrics()  # nothing lost
