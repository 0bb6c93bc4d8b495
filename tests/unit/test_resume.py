"""Resume plans on hand-made run folders (no model): which checkpoints count, what is refused."""

import json
import os

import pytest

from studio.config import StudioConfig, validate
from studio.errors import UserError
from studio.jobs import JobManager
from studio.resume import (complete_checkpoints, last_complete_checkpoint, plan_lines, prepare_resume,
                           resume_plan)
from studio.runs import RunStore


def checkpoint(run, step, weights="adapter_model.safetensors", state=True, optimizer=True, max_steps=100):
    folder = run.path / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if state:
        (folder / "trainer_state.json").write_text(json.dumps(
            {"global_step": step, "max_steps": max_steps, "num_train_epochs": 3}))
    if weights:
        (folder / weights).write_bytes(b"x" * 8)
    if optimizer:
        (folder / "optimizer.pt").write_bytes(b"x")
        (folder / "scheduler.pt").write_bytes(b"x")
    return folder


@pytest.fixture
def run(home):
    run = RunStore(home).create(StudioConfig())
    run.update_status(state="stopped")
    return run


def test_only_complete_checkpoints_count(run):
    assert complete_checkpoints(run) == [] and last_complete_checkpoint(run) is None
    checkpoint(run, 10)
    checkpoint(run, 20, weights="model.safetensors")
    checkpoint(run, 25, weights="model.safetensors.index.json")
    checkpoint(run, 30, optimizer=False)            # died before the optimizer state
    checkpoint(run, 40, state=False)                # no trainer_state.json
    checkpoint(run, 50, weights=None)               # no weights
    (run.path / "checkpoints" / "checkpoint-60").mkdir()  # empty
    bad = checkpoint(run, 70)
    (bad / "trainer_state.json").write_text("{torn")  # half-written
    empty = checkpoint(run, 80)
    (empty / "adapter_model.safetensors").write_bytes(b"")  # zero-byte weights
    (run.path / "checkpoints" / "notes").mkdir()
    assert [s for s, _ in complete_checkpoints(run)] == [10, 20, 25]
    assert last_complete_checkpoint(run)[1].name == "checkpoint-25"


def test_plan_lists_step_total_changes_and_skipped(run):
    checkpoint(run, 10)
    checkpoint(run, 20, optimizer=False)
    plan = resume_plan(run, ["max_steps=150", "eval_every=5"])
    assert plan["refusals"] == []
    assert plan["step"] == 10 and plan["total"] == 150 and plan["skipped"] == [20]
    assert plan["changes"] == [("train.max_steps", 0, 150), ("train.eval_every", 0, 5)]
    assert resume_plan(run)["total"] == 100  # the checkpoint's own total when nothing changes
    assert resume_plan(run, ["epochs=6"])["total"] == 200  # scaled: 100 steps were 3 epochs
    lines = [m.render("en") for m in plan_lines(plan)]
    assert "step 10 of 150" in lines[0] and "checkpoint-20" in lines[-1]
    assert all(m.render("zh") for m in plan_lines(plan))


@pytest.mark.parametrize("state,code", [("completed", "resume.completed")])
def test_completed_run_is_refused(run, state, code):
    checkpoint(run, 10)
    run.update_status(state=state)
    assert [m.code for m in resume_plan(run)["refusals"]] == [code]


def test_live_run_is_refused_but_a_dead_owner_is_a_crash(run):
    checkpoint(run, 10)
    run._write_status(run.status(), {"state": "running", "pid": os.getpid()})
    from studio.runs import process_identity

    run._write_status(run.status(), process_identity())
    assert [m.code for m in resume_plan(run)["refusals"]] == ["resume.still_active"]
    run._write_status(run.status(), {"pid": 999999999, "pid_started": 1})  # the process is gone
    assert resume_plan(run)["refusals"] == []


def test_refusals_fixed_settings_no_checkpoint_nothing_left(run):
    assert [m.code for m in resume_plan(run)["refusals"]] == ["resume.no_checkpoint"]
    checkpoint(run, 10)
    codes = [m.code for m in resume_plan(run, ["method=full", "data=other", "batch_size=2"])["refusals"]]
    assert codes == ["resume.fixed_setting"] * 3
    assert [m.code for m in resume_plan(run, ["max_steps=10"])["refusals"]] == ["resume.nothing_left"]
    with pytest.raises(UserError):
        resume_plan(run, ["no_such_setting=1"])


def test_prepare_resume_reopens_trims_metrics_and_refuses_without_changes(run):
    checkpoint(run, 4)
    for step in range(1, 8):
        run.append_metric({"step": step, "loss": 1.0})
    with open(run.metrics_path, "a") as fh:
        fh.write('{"step": 8, "lo')  # the torn last line of a killed process
    before = (run.path / "config.yaml").read_text()
    with pytest.raises(UserError):
        prepare_resume(run, ["lora_r=4"])
    assert run.status()["state"] == "stopped" and len(run.read_metrics()) == 7
    assert (run.path / "config.yaml").read_text() == before
    plan = prepare_resume(run, ["max_steps=9"])
    assert plan["step"] == 4
    assert [e["step"] for e in run.read_metrics()] == [1, 2, 3, 4]
    assert len((run.path / "metrics.before-resume.jsonl").read_text().splitlines()) == 3
    status = run.status()
    assert status["state"] == "queued" and status["step"] == 4 and "ended_at" not in status
    assert run.config().train.max_steps == 9
    assert "resume: from checkpoint-4" in (run.path / "logs.txt").read_text()


def test_job_manager_refuses_a_second_job(run, home):
    checkpoint(run, 4)
    jobs = JobManager(RunStore(home))
    import threading

    gate = threading.Event()
    jobs.submit(RunStore(home).create(StudioConfig()), lambda r, s: gate.wait(30) and {})
    try:
        with pytest.raises(UserError) as caught:
            jobs.resume(run)
        assert caught.value.msg.code == "jobs.busy"
        assert run.status()["state"] == "stopped"
    finally:
        gate.set()
        jobs.wait(30)


def test_controls_validation():
    cfg = StudioConfig()
    cfg.train.early_stopping_patience = 2
    assert validate(cfg) == {}
    cfg.data.val_size = 0
    assert validate(cfg)["train.early_stopping_patience"].code == "resume.early_stopping_needs_val"
    cfg.data.path = "library:abc"  # a library dataset brings its own validation split
    assert "train.early_stopping_patience" not in validate(cfg)
    dpo = StudioConfig()
    dpo.method.stage = "dpo"
    dpo.train.packing = True
    dpo.train.neftune_alpha = 5
    assert {"train.packing", "train.neftune_alpha"} <= set(validate(dpo))


def test_runs_tab_resume_shows_refusals_as_sentences(run, home):
    from studio.ui.runs_tab import resume_run
    from studio.workspace import Workspace

    ws = Workspace(home)
    assert resume_run(ws, "", "en").startswith("Choose a run")
    assert "no run called" in resume_run(ws, "../etc", "en")
    assert "no complete checkpoint" in resume_run(ws, run.id, "en")
    assert "检查点" in resume_run(ws, run.id, "zh")
    run.update_status(state="completed")
    assert "has completed" in resume_run(ws, run.id, "en")
