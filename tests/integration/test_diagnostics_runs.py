"""Live diagnostics on real (tiny) demo runs: NaN from an absurd learning rate, overfitting, a flat
loss, each written to the run folder with its advice; the CLI prints them as `! …` lines."""

import os
import subprocess
import sys

import pytest

from helpers import ROOT, fast_overrides
from studio.runs import RunStore
from studio.workspace import Workspace


def train(ws: Workspace, overrides: list[str], timeout: float = 600):
    run = ws.start(overrides)
    ws.jobs.wait(timeout)
    assert not ws.jobs.busy(), "training did not finish in time"
    return run


def diagnostics(run) -> dict:
    return {e["diagnostic"]: e for e in run.read_metrics() if e.get("diagnostic")}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_absurd_learning_rate_fails_with_nan_and_the_advice(home, monkeypatch, precision):
    import studio.train

    # The form refuses a learning rate above 1.0, so the absurd one is put into the trainer's
    # arguments directly: the real optimizer then blows the weights up.
    real = studio.train.training_arguments

    def absurd(*args, **kwargs):
        return {**real(*args, **kwargs), "learning_rate": 1e4}

    monkeypatch.setattr(studio.train, "training_arguments", absurd)
    run = train(Workspace(home), fast_overrides(max_steps=20, eval_every=1000, max_grad_norm=0,
                                                precision=precision))
    status = run.status()
    assert status["state"] == "failed", status
    # How the weights blow up depends on the kernels: fp32 overflows to NaN; under bf16 autocast the
    # activations saturate instead (the norm layers zero them) and the gradients become exactly 0.
    kind = {"train.not_finite": "not_finite", "train.collapsed": "collapsed"}[status["message_msg"]["code"]]
    found = diagnostics(run)
    assert found[kind]["severity"] == "error"
    assert found[kind]["fix"]["code"] == "diag.unstable_fix"
    assert found[kind]["step"] == status["step"]


def test_overfitting_run_raises_its_diagnostic(home):
    # A dozen rows, a high learning rate, an evaluation every 3 steps: the adapter memorises the
    # few training rows and the eval loss turns up while the training loss keeps falling.
    run = train(Workspace(home), fast_overrides(learning_rate=1e-2, max_steps=45, max_samples=12,
                                                val_size=0.4, eval_every=3, batch_size=2))
    assert run.status()["state"] == "completed", run.status()["message"]
    found = diagnostics(run)
    assert "overfitting" in found, run.read_metrics()
    assert found["overfitting"]["fix"]["code"] == "diag.overfitting_fix"
    assert "flat_loss" not in found  # its loss fell steeply, in wide steps (batches of 2)


def test_flat_loss_run_raises_its_diagnostic_and_the_cli_prints_it(home):
    out = subprocess.run(
        [sys.executable, "-m", "studio", "train", "recipes/demo.yaml",
         *fast_overrides(learning_rate=1e-9, max_steps=20, eval_every=10), "--home", str(home)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env={**os.environ, "STUDIO_LANG": "en"})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("! ")]
    assert any("training loss is not falling" in line and "learning rate" in line for line in lines), out.stdout
    run = RunStore(home).latest()
    assert diagnostics(run)["flat_loss"]["severity"] == "warning"
