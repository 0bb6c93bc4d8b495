"""Resume: a training process killed with SIGKILL goes on from its last complete checkpoint."""

import json
import os
import signal
import subprocess
import sys

import pytest

from helpers import ROOT, fast_overrides, wait_for
from studio.cli import main as cli_main
from studio.errors import UserError
from studio.jobs import JobManager
from studio.resume import complete_checkpoints, resume_plan
from studio.runs import RunStore

STEPS = 40  # long enough that the kill lands mid-run on a fast machine too
RESUMED = STEPS + 4


def killed_run(home):
    """A demo run trained in a subprocess and killed (SIGKILL) once checkpoint-4 is complete."""
    items = fast_overrides(max_steps=STEPS, eval_every=4, save_total_limit=5, max_samples=60)
    proc = subprocess.Popen([sys.executable, "-m", "studio.train", "recipes/demo.yaml", *items,
                             "--home", str(home)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    store = RunStore(home)
    try:
        run = wait_for(store.latest, 120, "the run folder")
        wait_for(lambda: complete_checkpoints(run), 300, "a complete checkpoint")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    return store, run




def test_killed_run_resumes_from_last_complete_checkpoint(home, capsys):
    store, run = killed_run(home)
    assert run.status()["state"] == "running"  # the dead process never wrote a final state
    step, path = complete_checkpoints(run)[-1]
    assert 0 < step < STEPS
    # The kill can land while the next checkpoint is being written: that one is half-written too.
    cut = sorted(s for s in (int(p.name.split("-")[1]) for p in (run.path / "checkpoints").glob("checkpoint-*"))
                 if s > step)
    (run.path / "checkpoints" / "checkpoint-999").mkdir()  # an empty (half-written) checkpoint
    plan = resume_plan(run, [f"max_steps={RESUMED}"])
    assert plan["refusals"] == [] and plan["step"] == step and plan["total"] == RESUMED
    assert plan["skipped"] == cut + [999]
    assert [c[0] for c in plan["changes"]] == ["train.max_steps"]
    events_before = [e for e in run.read_metrics() if e["step"] <= step]

    # The CLI prints the plan, then trains in this process through the job manager.
    assert cli_main(["train", "--resume", run.id, f"max_steps={RESUMED}", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert f"Resumes run {run.id} from step {step} of {RESUMED}." in out
    assert f"Max steps: {STEPS} -> {RESUMED}" in out and "Skipped incomplete checkpoint-999" in out
    status = run.status()
    assert status["state"] == "completed", status["message"]
    assert status["step"] == RESUMED
    assert f"resumed from checkpoint-{step}" in (run.path / "logs.txt").read_text()
    assert (run.path / "adapter" / "adapter_model.safetensors").is_file()
    events = run.read_metrics()
    assert events[:len(events_before)] == events_before  # kept as they were
    new = events[len(events_before):]
    assert new and new[0]["step"] == step + 1  # continues right after the checkpoint, one line
    train_steps = [e["step"] for e in events if e["loss"] is not None]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] == RESUMED
    state = json.loads((run.path / "checkpoints" / f"checkpoint-{RESUMED}" / "trainer_state.json").read_text())
    assert state["global_step"] == RESUMED
    assert run.config().train.max_steps == RESUMED

    with pytest.raises(UserError):  # completed now: nothing to resume
        JobManager(store).resume(run)
    assert cli_main(["train", "--resume", run.id, "--home", str(home)]) == 2
    assert "has completed" in capsys.readouterr().err


def test_cli_resume_refusals(home, capsys):
    assert cli_main(["train", "--resume", "no-such-run", "--home", str(home)]) == 2
    assert "error:" in capsys.readouterr().err


def test_stopped_run_saved_at_the_stop_and_resumes_there(home):
    store = RunStore(home)
    jobs = JobManager(store)
    from studio.config import from_command_line

    run = jobs.start(from_command_line(["recipes/demo.yaml", *fast_overrides(max_steps=400, eval_every=200)]))
    wait_for(lambda: (run.status().get("step") or 0) >= 2, 300, "two steps")
    jobs.stop()
    jobs.wait(300)
    status = run.status()
    assert status["state"] == "stopped", status["message"]
    step = status["step"]
    assert complete_checkpoints(run)[-1][0] == step  # saved at the stop, not only at step 200
    plan = jobs.resume(run, ["max_steps=" + str(step + 2)])
    assert plan["step"] == step
    jobs.wait(300)
    status = run.status()
    assert status["state"] == "completed", status["message"]
    events = [e for e in run.read_metrics() if e["loss"] is not None]
    assert [e["step"] for e in events][-3:] == [step, step + 1, step + 2]
    tokens = [e["tokens"] for e in events]
    assert tokens == sorted(tokens) and tokens[-1] > tokens[-3]  # the count goes on, no drop to 0
