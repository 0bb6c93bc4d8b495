"""The quick sweep without a model: parsing and validating specs, the best value, the record."""

import json
import threading

import pytest

from studio.config import StudioConfig, set_value
from studio.errors import UserError
from studio.runs import RunStore
from studio.sweep import (SHORT_STEPS, SweepSpec, best_config, choose_best, latest_record, load_record,
                          start_sweep, trial_config)


def test_values_are_parsed_from_text():
    spec = SweepSpec.parse("learning_rate", "1e-4, 3e-4，1e-3", StudioConfig())
    assert spec.values == [1e-4, 3e-4, 1e-3] and spec.key == "train.learning_rate"
    assert SweepSpec.parse("lora_r", "8,16", StudioConfig()).values == [8, 16]
    assert SweepSpec.parse("epochs", ["1", "2"], StudioConfig()).values == [1.0, 2.0]


@pytest.mark.parametrize("param, text, fragment", [
    ("batch_size", "1,2", "can vary"),
    ("learning_rate", "1e-4", "between 2 and 5"),
    ("lora_r", "1,2,3,4,5,6", "between 2 and 5"),
    ("learning_rate", "1e-4, abc", "needs a number"),
    ("learning_rate", "1e-4, -1", "at least"),
    ("lora_r", "8, 2000", "at most"),
    ("lora_r", "8, 8", "only once"),
    ("learning_rate", "", "between 2 and 5"),
])
def test_bad_specs_are_one_sentence(param, text, fragment):
    with pytest.raises(UserError) as caught:
        SweepSpec.parse(param, text, StudioConfig())
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_lora_r_needs_a_lora_method():
    with pytest.raises(UserError, match="no lora_r"):
        SweepSpec.parse("lora_r", "4,8", set_value(StudioConfig(), "method.method", "full"))


def test_trials_are_short_and_named():
    base = set_value(StudioConfig(), "train.max_steps", 8)
    spec = SweepSpec.parse("learning_rate", "1e-6,3e-3", base)
    cfg = trial_config(base, spec, 3e-3)
    assert cfg.name == "sweep learning_rate=0.003" and cfg.train.learning_rate == 3e-3
    assert cfg.train.max_steps == 8
    assert trial_config(StudioConfig(), spec, 1e-6).train.max_steps == SHORT_STEPS
    epochs = trial_config(StudioConfig(), SweepSpec.parse("epochs", "1,2", StudioConfig()), 2.0)
    assert epochs.train.epochs == 2.0 and epochs.train.max_steps == 0 and epochs.data.max_samples == 200


def trial(value, state="completed", eval_loss=None, loss=None):
    return {"value": value, "state": state, "final_eval_loss": eval_loss, "final_loss": loss}


def test_best_is_lowest_eval_loss_then_train_loss():
    trials = [trial(1e-4, eval_loss=2.0, loss=1.0), trial(3e-4, eval_loss=1.5, loss=1.9),
              trial(1e-3, state="failed", eval_loss=0.1)]
    assert choose_best(trials) == {"index": 1, "value": 3e-4, "by": "eval_loss", "loss": 1.5}
    no_eval = [trial(8, loss=2.0), trial(16, loss=1.0), trial(32, state="stopped", loss=0.5)]
    assert choose_best(no_eval) == {"index": 1, "value": 16, "by": "loss", "loss": 1.0}
    assert choose_best([trial(1, state="failed"), trial(2, loss="nan")]) is None


class FakeRun:
    def __init__(self, path, final):
        self.path, self.id, self._final = path, path.name, final

    def status(self):
        return self._final

    def read_metrics(self):
        return []


class FakeJobs:
    """Stands in for JobManager: each start 'trains' until released, one at a time."""

    def __init__(self, home, losses):
        self.store = RunStore(home)
        self.losses, self.started, self.running = list(losses), [], None
        self.release = threading.Event()

    def busy(self):
        return self.running is not None

    def active_run(self):
        return self.running

    def check(self, cfg):
        return None

    def start(self, cfg):
        assert self.running is None, "two trials at once"
        loss = self.losses.pop(0)
        state = "failed" if loss is None else "completed"
        run = FakeRun(self.store.root / f"run{len(self.started)}",
                      {"state": state, "final_loss": loss, "final_eval_loss": loss})
        self.started.append(cfg)
        self.running = run
        return run

    def wait(self, timeout=None):
        if self.release.wait(timeout):
            self.running = None

    def stop(self):
        self.running = None


def test_sweep_record_runs_trials_in_order_and_survives_a_failed_one(home):
    base = StudioConfig()
    jobs = FakeJobs(home, [2.0, None, 1.0])
    sweep = start_sweep(jobs, base, SweepSpec.parse("learning_rate", "1e-4,3e-4,1e-3", base))
    with pytest.raises(UserError, match="already running"):
        start_sweep(jobs, base, SweepSpec.parse("learning_rate", "1e-4,3e-4", base))
    jobs.release.set()
    sweep.wait(30)
    record = load_record(home, sweep.id)
    assert record == latest_record(home) and record["state"] == "completed"
    assert [t["state"] for t in record["trials"]] == ["completed", "failed", "completed"]
    assert [c.name for c in jobs.started] == ["sweep learning_rate=0.0001", "sweep learning_rate=0.0003",
                                              "sweep learning_rate=0.001"]
    assert record["best"]["value"] == 1e-3 and record["best"]["by"] == "eval_loss"
    cfg = best_config(record)
    assert cfg.train.learning_rate == 1e-3 and cfg.train.max_steps == 0 and cfg.name == ""
    on_disk = json.loads((home / "sweeps" / f"{sweep.id}.json").read_text())
    assert on_disk["trials"][0]["run_id"] == "run0"


def test_sweep_refused_while_training_runs(home):
    jobs = FakeJobs(home, [1.0])
    jobs.running = FakeRun(home / "busy", {})
    with pytest.raises(UserError, match="training run"):
        start_sweep(jobs, StudioConfig(), SweepSpec.parse("learning_rate", "1e-4,3e-4", StudioConfig()))
    assert not (home / "sweeps").exists()


def test_stop_skips_the_rest(home):
    jobs = FakeJobs(home, [1.0, 2.0, 3.0])
    sweep = start_sweep(jobs, StudioConfig(), SweepSpec.parse("lora_r", "4,8,16", StudioConfig()))
    sweep.stop()
    sweep.wait(30)
    record = sweep.record()
    assert record["state"] == "stopped" and record["trials"][-1]["state"] == "skipped"
    assert len(jobs.started) <= 1


def test_record_of_a_dead_process_reads_crashed(home):
    folder = home / "sweeps"
    folder.mkdir(parents=True)
    (folder / "old.json").write_text(json.dumps({"id": "old", "state": "running", "pid": 999999999,
                                                 "host": "elsewhere", "trials": []}))
    assert load_record(home, "old")["state"] == "crashed"
    assert load_record(home, "../etc") is None


def test_panel_shows_progress_table_plot_and_best_in_both_languages():
    from studio.ui.sweep_panel import best_text, plot_frame, progress_text, table

    record = {"id": "s", "state": "running", "current": 1, "best": None, "trials": [
        {"label": "learning_rate=1e-06", "state": "completed", "final_eval_loss": 2.5, "final_loss": 2.4,
         "run_id": "r1"},
        {"label": "learning_rate=0.003", "state": "running", "final_eval_loss": None, "final_loss": None,
         "run_id": "r2"}]}
    assert progress_text(record, "en") == "Trial 2 of 2: learning_rate=0.003 (running)."
    assert "第 2 个试验" in progress_text(record, "zh")
    assert table(record, "en").values.tolist()[0] == ["learning_rate=1e-06", "2.5000", "2.4000", "completed", "r1"]
    frame = plot_frame({"learning_rate=1e-06": [{"step": 4, "eval_loss": 2.6}, {"step": 8, "eval_loss": 2.5}],
                        "learning_rate=0.003": [{"step": 1, "loss": 2.0, "eval_loss": None}]})
    assert set(frame["series"]) == {"learning_rate=1e-06", "learning_rate=0.003"}  # NaN placeholder
    assert best_text(record, "en") == ""
    done = {**record, "state": "completed", "best": {"index": 0, "value": 1e-6, "by": "loss", "loss": 2.4}}
    assert best_text(done, "en") == "**Best: learning_rate=1e-06, with the lowest final train loss (there is no validation data): 2.4000.**"
    assert "<" not in progress_text({**record, "trials": [{**record["trials"][0], "label": "<b>"}] * 2}, "en")
