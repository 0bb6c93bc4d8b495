"""RunRecorder is the TrainerCallback that streams events into the run folder."""

import threading

from transformers import TrainerControl, TrainerState, TrainingArguments

from studio.config import StudioConfig
from studio.runs import RunStore
from studio.train import RunRecorder


def _setup(home):
    run = RunStore(home).create(StudioConfig())
    stop = threading.Event()
    rec = RunRecorder(run, stop)
    state, control = TrainerState(), TrainerControl()
    state.max_steps = 10
    args = TrainingArguments(output_dir=str(home / "out"), report_to="none")
    rec.on_train_begin(args, state, control)
    return run, stop, rec, state, control, args


def test_events_follow_the_contract(home):
    run, stop, rec, state, control, args = _setup(home)
    for step in (1, 2):
        rec.on_step_begin(args, state, control)
        state.global_step, state.epoch = step, step / 10
        rec.on_step_end(args, state, control)
        rec.on_log(args, state, control, logs={"loss": 3.0 - step, "learning_rate": 1e-3,
                                               "grad_norm": 0.5, "num_tokens": 100 * step})
    rec.on_log(args, state, control, logs={"eval_loss": 1.7})
    rec.on_log(args, state, control, logs={"train_runtime": 1.0, "train_loss": 1.5})  # summary: ignored
    events = run.read_metrics()
    assert len(events) == 3
    keys = {"t", "step", "epoch", "loss", "eval_loss", "learning_rate", "grad_norm", "tokens", "tokens_per_s"}
    assert all(set(e) == keys for e in events)
    assert events[1]["loss"] == 1.0 and events[1]["tokens"] == 200 and events[1]["tokens_per_s"] > 0
    assert events[2]["eval_loss"] == 1.7 and events[2]["loss"] is None
    status = run.status()
    assert status["phase"] == "training" and status["total_steps"] == 10 and status["step"] == 2


def test_nan_loss_stops_with_a_clear_message(home):
    run, stop, rec, state, control, args = _setup(home)
    state.global_step = 3
    rec.on_log(args, state, control, logs={"loss": float("nan")})
    assert control.should_training_stop
    assert rec.failure.code == "train.not_finite"
    text = rec.failure.render("en")
    assert "loss became nan at step 3" in text and "learning rate" in text
    assert rec.failure.render("zh") != text
    assert run.read_metrics()[0]["loss"] == "nan"


def test_stop_event_ends_training_after_the_step(home):
    run, stop, rec, state, control, args = _setup(home)
    rec.on_step_end(args, state, control)
    assert not control.should_training_stop
    stop.set()
    rec.on_step_end(args, state, control)
    assert control.should_training_stop


def test_evaluation_time_is_measured_for_the_eta(home):
    run, stop, rec, state, control, args = _setup(home)
    rec.on_step_begin(args, state, control)
    state.global_step = 1
    rec.on_step_end(args, state, control)
    rec.on_evaluate(args, state, control)
    status = run.status()
    assert status["evals_done"] == 1 and status["eval_seconds"] >= 0


def test_evaluation_is_bounded_in_rows_and_in_count():
    from datasets import Dataset

    from studio.config import apply_overrides
    from studio.train import EVAL_ROWS, eval_interval, eval_sample

    big = Dataset.from_list([{"i": i} for i in range(1000)])
    sample = eval_sample(big, seed=1)
    assert len(sample) == EVAL_ROWS <= 200
    assert sample["i"] == eval_sample(big, seed=1)["i"] != list(range(EVAL_ROWS))  # seeded, shuffled
    small = Dataset.from_list([{"i": i} for i in range(50)])
    assert eval_sample(small, seed=1) is small and eval_sample(None, seed=1) is None
    assert 1000 // eval_interval(StudioConfig(), 1000, eval_rows=8) <= 10  # about ten a run
    assert eval_interval(apply_overrides(StudioConfig(), ["eval_every=8"]), 24) == 8  # as asked
    # By default a 12-step run with batch 8 evaluates 60 rows every 8 steps, not every step.
    assert eval_interval(StudioConfig(), 12, eval_rows=60) == 8
    assert eval_interval(StudioConfig(), 3, eval_rows=200) == 3  # the end is still evaluated
    assert eval_interval(StudioConfig(), 10000, eval_rows=16) == 1000



def test_automatic_checkpoints_are_paced_and_asked_ones_kept(tmp_path):
    """The studio's own cadence saves at most once a minute plus the last step; a Stop, and a
    cadence the user set, always save. Run through transformers' own callback handler, after its
    DefaultFlowCallback, as the trainer runs them."""
    from transformers import DefaultFlowCallback
    from transformers.trainer_callback import CallbackHandler

    from studio.config import apply_overrides
    from studio.train import PacedCheckpoints, trainer_callbacks

    run, stop, rec, state, control, _ = _setup(tmp_path)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", save_strategy="steps",
                             save_steps=2)
    state.save_steps, state.max_steps = 2, 10

    def saves(callbacks, steps, minutes_since_last_save=0.0):
        handler = CallbackHandler([DefaultFlowCallback, *callbacks], None, None, None, None)
        handler.on_train_begin(args, state, TrainerControl())
        for callback in callbacks:
            if isinstance(callback, PacedCheckpoints):
                callback.last -= 60 * minutes_since_last_save
        saved = []
        for step in steps:
            state.global_step, control = step, TrainerControl()
            if handler.on_step_end(args, state, control).should_save:
                saved.append(step)
                handler.on_save(args, state, control)
        return saved

    callbacks = trainer_callbacks(StudioConfig(), rec)
    assert any(isinstance(c, PacedCheckpoints) for c in callbacks)
    assert saves(callbacks, range(1, 11)) == [10]  # a quick run: only the last step's
    # A minute after the last save the next due one is written, and the minute starts again.
    assert saves(callbacks, range(1, 11), minutes_since_last_save=1) == [2, 10]
    stop.set()  # a Stop saves at once, however recent the last checkpoint
    assert saves(callbacks, [3]) == [3]
    stop.clear()
    for asked in (["save_every=2"], ["eval_every=2"]):
        callbacks = trainer_callbacks(apply_overrides(StudioConfig(), asked), rec)
        assert saves(callbacks, range(1, 11)) == [2, 4, 6, 8, 10]  # as the user asked
    early = trainer_callbacks(apply_overrides(StudioConfig(), ["early_stopping_patience=2"]), rec)
    assert not any(isinstance(c, PacedCheckpoints) for c in early)  # it needs every evaluation's
