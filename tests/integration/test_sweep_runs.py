"""A real two-value sweep on the demo model: trials one after another, the better one named."""

import json
import subprocess
import sys

from helpers import ROOT, fast_overrides
from studio.config import StudioConfig, apply_overrides
from studio.jobs import JobManager
from studio.runs import RunStore
from studio.sweep import SweepSpec, best_config, load_record, start_sweep

OVERRIDES = fast_overrides(max_steps=8, max_samples=40, eval_every=4, batch_size=4)


def test_two_learning_rates_run_one_after_another_and_the_better_wins(home):
    store = RunStore(home)
    jobs = JobManager(store)
    base = apply_overrides(StudioConfig(), OVERRIDES)
    sweep = start_sweep(jobs, base, SweepSpec.parse("learning_rate", "1e-6, 3e-3", base))
    sweep.wait(600)
    assert not sweep.alive(), "the sweep did not finish in time"
    record = load_record(home, sweep.id)
    assert record["state"] == "completed", record
    first, second = (store.get(t["run_id"]).status() for t in record["trials"])
    assert first["state"] == second["state"] == "completed"
    assert second["started_at"] >= first["ended_at"]  # never two trials at once
    assert record["best"]["value"] == 3e-3 and record["best"]["by"] == "eval_loss"
    assert all(isinstance(t["final_eval_loss"], float) for t in record["trials"])
    names = {r["label"] for r in store.list()}
    assert names == {"sweep learning_rate=1e-06", "sweep learning_rate=0.003"}
    assert best_config(record).train.learning_rate == 3e-3


def test_cli_sweep_bad_value_is_one_line_and_creates_nothing(home):
    result = subprocess.run([sys.executable, "-m", "studio", "sweep", "--param", "learning_rate",
                             "--values", "1e-4,oops", *OVERRIDES, "--home", str(home)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert not list((home / "runs").glob("*")) and not (home / "sweeps").exists()


def test_cli_sweep_prints_each_trial_and_the_best(home):
    result = subprocess.run([sys.executable, "-m", "studio", "sweep", "--param", "learning_rate",
                             "--values", "1e-6,3e-3", *OVERRIDES, "--home", str(home), "--json"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout[result.stdout.index("{"):])
    assert [t["state"] for t in record["trials"]] == ["completed", "completed"]
    assert record["best"]["value"] == 3e-3
