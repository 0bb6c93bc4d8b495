"""A tracker receives the run's losses: TensorBoard event files in the run folder, equal to metrics.jsonl."""

import pytest

from helpers import fast_overrides
from studio import trackers
from studio.workspace import Workspace


def test_tensorboard_receives_the_same_train_losses(home):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ws = Workspace(home)
    run = ws.start(fast_overrides(max_steps=4, eval_every=2, report_to="tensorboard"))
    ws.jobs.wait(300)
    assert not ws.jobs.busy(), "training did not finish in time"
    assert run.status()["state"] == "completed", run.status()["message"]

    folder = run.path / "tracker" / "tensorboard"
    assert trackers.read_records(run) == [{"name": "tensorboard", "location": str(folder), "run": run.id}]
    events = EventAccumulator(str(folder))
    events.Reload()
    logged = {e.step: e.value for e in events.Scalars("train/loss")}
    expected = {e["step"]: e["loss"] for e in run.read_metrics() if e.get("loss") is not None}
    assert sorted(logged) == sorted(expected) == [1, 2, 3, 4]
    for step, loss in expected.items():
        assert logged[step] == pytest.approx(loss, rel=1e-5)
    evals = {e.step: e.value for e in events.Scalars("eval/loss")}
    assert sorted(evals) == [2, 4]
    assert not list(home.glob("**/checkpoints/runs"))  # nothing in transformers' default folder
