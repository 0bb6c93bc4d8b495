"""Training controls on the demo model: early stopping, NEFTune and packing (a few CPU steps)."""

import pytest

from helpers import fast_overrides
from studio.errors import UserErrors
from studio.workspace import Workspace


def train(home, overrides, timeout=600):
    ws = Workspace(home)
    run = ws.start(overrides)
    ws.jobs.wait(timeout)
    assert not ws.jobs.busy(), "training did not finish in time"
    return run


def test_early_stopping_ends_an_overfitting_run_and_keeps_the_best_checkpoint(home):
    # A few rows, a high learning rate and many steps: the eval loss soon stops falling.
    run = train(home, fast_overrides(max_samples=40, max_steps=60, eval_every=3, learning_rate=0.02,
                                     early_stopping_patience=2, val_size=0.25, batch_size=4))
    status = run.status()
    assert status["state"] == "completed", status["message"]
    assert status["step"] < 60
    assert status["message_msg"]["code"] == "resume.early_stopped", status["message"]
    evals = [e for e in run.read_metrics() if e["eval_loss"] is not None]
    best = min(evals, key=lambda e: e["eval_loss"])
    assert f"{best['eval_loss']:.4f}" in status["message"]
    assert f"checkpoint-{best['step']}" in status["message"]  # the best one was loaded at the end
    assert evals[-1]["step"] == status["step"] and best["step"] < status["step"]
    assert (run.path / "adapter" / "adapter_model.safetensors").is_file()


def test_early_stopping_without_validation_is_refused_before_a_run_exists(home):
    ws = Workspace(home)
    with pytest.raises(UserErrors) as caught:
        ws.start(fast_overrides(early_stopping_patience=2, val_size=0))
    assert "train.early_stopping_patience" in caught.value.problems
    assert not list((home / "runs").glob("*")) if (home / "runs").exists() else True


@pytest.mark.parametrize("extra", [{"neftune_alpha": 5}, {"packing": True}, {"packing": True, "loss_on": "all"}])
def test_neftune_and_packing_runs_complete(home, extra):
    run = train(home, fast_overrides(max_steps=4, **extra))
    status = run.status()
    assert status["state"] == "completed", status["message"]
    losses = [e["loss"] for e in run.read_metrics() if e["loss"] is not None]
    assert len(losses) == 4 and all(loss == loss and loss < 50 for loss in losses)
