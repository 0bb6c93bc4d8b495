"""Real training through TRL/PEFT on the bundled demo model (CPU, a handful of steps)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, fast_overrides
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
    train_events = [e for e in events if e["loss"] is not None]
    losses = [e["loss"] for e in train_events]
    assert len(losses) == 24
    assert mean(losses[-4:]) < mean(losses[:4]) * 0.8, losses
    assert [e["step"] for e in events if e["eval_loss"] is not None] == [8, 16, 24]
    assert [e for e in train_events if e["learning_rate"] is None or e["tokens"] <= 0] == []
    assert (run.path / "adapter" / "adapter_model.safetensors").is_file()
    assert (run.path / "logs.txt").is_file()
    assert run.config().method.method == "lora"  # config.yaml is there and reads back
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


def test_failing_run_is_marked_failed_and_the_manager_keeps_working(home, monkeypatch):
    import studio.train

    def broken_loader(cfg, plan):
        raise RuntimeError("weights are corrupt")

    ws = Workspace(home)
    monkeypatch.setattr(studio.train, "load_model", broken_loader)
    failed = train(ws, fast_overrides())
    status = failed.status()
    assert status["state"] == "failed" and "weights are corrupt" in status["message"]
    assert status["message_msg"]["code"] == "error.unexpected"
    assert "Traceback" in (failed.path / "logs.txt").read_text()
    monkeypatch.undo()
    ok = train(ws, fast_overrides(max_steps=2))
    assert ok.status()["state"] == "completed"


def test_a_nan_loss_ends_the_run_failed(home, monkeypatch):
    from studio.answer_loss import AnswerLossSFTTrainer as SFTTrainer  # the studio's SFT trainer

    real_loss = SFTTrainer.compute_loss

    def nan_loss(self, *args, **kwargs):
        result = real_loss(self, *args, **kwargs)
        if isinstance(result, tuple):
            return (result[0] * float("nan"),) + tuple(result[1:])
        return result * float("nan")

    monkeypatch.setattr(SFTTrainer, "compute_loss", nan_loss)
    run = train(Workspace(home), fast_overrides(max_steps=50, eval_every=1000))
    status = run.status()
    assert status["state"] == "failed", status
    assert status["message_msg"]["code"] == "train.not_finite"
    assert "became nan at step 1" in status["message"] and status["step"] == 1
    assert run.read_metrics()[0]["loss"] == "nan"


def _first_batch(home, loss_on):
    import threading

    from studio.config import StudioConfig, apply_overrides
    from studio.runs import RunStore
    from studio.train import build_trainer

    cfg = apply_overrides(StudioConfig(), fast_overrides(loss_on=loss_on, batch_size=4))
    run = RunStore(home).create(cfg)
    trainer, _ = build_trainer(cfg, run, threading.Event())
    batch = next(iter(trainer.get_train_dataloader()))
    records = [json.loads(line) for line in (run.path / "data" / "train.jsonl").read_text().splitlines()]
    return trainer.processing_class, batch, records


def _examples(batch) -> list[tuple]:
    """(input ids, labels) of each example in a batch: padded rows without their padding, or the
    examples of a padding-free row (the default on CPUs), cut where `cu_seq_lens_q` says."""
    if "attention_mask" in batch:
        return [(ids[mask.bool()], labels[mask.bool()])
                for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"])]
    bounds = batch["cu_seq_lens_q"].tolist()
    assert batch["input_ids"].shape[0] == 1 and bounds[-1] == batch["input_ids"].shape[1]
    return [(batch["input_ids"][0, s:e], batch["labels"][0, s:e]) for s, e in zip(bounds, bounds[1:])]


def test_loss_covers_the_answer_tokens_only(home):
    tokenizer, batch, records = _first_batch(home, "answer")
    answers = {r["completion"][0]["content"] for r in records}
    examples = _examples(batch)
    assert len(examples) == 4
    for ids, labels in examples:
        learned = labels != -100
        assert learned.any() and not learned[0]  # the prompt starts the row and is not learned
        assert (labels[learned] == ids[learned]).all()
        text = tokenizer.decode(ids[learned], skip_special_tokens=True).strip()
        assert text in answers, text  # what is learned is exactly one of the answers


def test_loss_on_all_covers_every_token(home):
    _, batch, _ = _first_batch(home, "all")
    examples = _examples(batch)
    assert len(examples) == 4
    for ids, labels in examples:
        # Every token is learned but the first: there is no token before it to predict it from
        # (padding-free rows mark it explicitly; in a padded row the shift drops it the same way).
        assert (labels[1:] == ids[1:]).all()


def test_freeze_leaves_the_early_layers_unchanged(home):
    from safetensors.torch import load_file

    from studio.paths import DEMO_MODEL

    run = train(Workspace(home), fast_overrides(method="freeze", freeze_layers=1, max_steps=3,
                                                learning_rate=1e-2))
    assert run.status()["state"] == "completed", run.status()["message"]
    before = load_file(DEMO_MODEL / "model.safetensors")
    after = load_file(run.path / "model" / "model.safetensors")
    last = max(int(name.split(".layers.")[1].split(".")[0]) for name in before if ".layers." in name)
    changed = {name for name in before if name in after and not torch_equal(before[name], after[name])}
    assert changed, "training changed nothing"
    assert all(f".layers.{last}." in name for name in changed), sorted(changed)
    assert last > 0 and any(".layers.0." in name for name in before)  # early layers exist, stayed put


def torch_equal(a, b):
    import torch

    return a.shape == b.shape and torch.equal(a.to(b.dtype), b)


def test_aidreams_fixture_model_learns_the_fixture_data(home, shared):
    from studio.config import StudioConfig, apply_overrides

    # The local user's path (the CLI's): files outside the studio home are theirs to use.
    ws = Workspace(home)
    run = ws.jobs.start(apply_overrides(StudioConfig(), [f"model={shared / 'models' / 'aidreams-260k'}",
                     f"data={shared / 'data' / 'alpaca_en_demo.json'}",
                     "max_samples=120", "max_steps=20", "batch_size=4", "max_length=128",
                     "learning_rate=2e-3", "eval_every=10"]))
    ws.jobs.wait(300)
    assert run.status()["state"] == "completed", run.status()["message"]
    losses = [e["loss"] for e in run.read_metrics() if e["loss"] is not None]
    assert mean(losses[-5:]) < mean(losses[:5]), losses


def test_cli_train_writes_the_same_run_folder(home, tmp_path):
    cache = tmp_path / "user-cache"  # where the command keeps its read-ahead list (studio.prefetch)
    out = subprocess.run(
        [sys.executable, "-m", "studio", "train", "recipes/demo.yaml", *fast_overrides(max_steps=4),
         "--home", str(home)], capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "step 4/4" in out.stdout and "loss" in out.stdout
    assert out.stdout.count("Finished after 4 steps") == 1  # the finish line, once
    assert "final train loss" in out.stdout and "studio runs --home" in out.stdout
    assert "Warning" not in out.stdout + out.stderr  # library warnings go to logs.txt
    listed = subprocess.run([sys.executable, "-m", "studio", "runs", "--json", "--home", str(home)],
                            capture_output=True, text=True, timeout=120)
    (row,) = json.loads(listed.stdout)
    assert row["state"] == "completed" and row["name"] == "demo-en-lora" and row["label"] == "demo"
    assert Path(row["output"], "adapter_model.safetensors").is_file()
    assert f"Result: {row['output']}" in out.stdout
    # The next start reads ahead what this one imported: torch, transformers and trl among them.
    (listed_files,) = cache.glob("finetune-studio/read-ahead-*.txt")
    files = listed_files.read_text(encoding="utf-8").splitlines()
    assert files[0].startswith("# finetune-studio read-ahead list")
    for part in ("/torch/", "/transformers/", "/trl/", "/peft/"):
        assert any(part in f for f in files), part
    assert not any("bitsandbytes" in f for f in files)  # a LoRA run never imports it


def test_opening_a_home_marks_runs_of_a_killed_studio_crashed(home):
    from studio.config import StudioConfig
    from studio.runs import RunStore

    orphan = RunStore(home).create(StudioConfig())
    orphan.update_status(state="running", phase="training", pid=2**22 + 4321)  # no such process
    orphan.append_metric({"step": 1, "loss": 2.0})
    ws = Workspace(home)  # what `studio ui` does at start
    assert ws.crashed == [orphan.id]
    assert orphan.status()["state"] == "crashed" and orphan.read_metrics()  # nothing lost
