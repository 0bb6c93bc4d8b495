"""RunRecorder: the TrainerCallback that streams a trainer's logs into the run folder.

    recorder = RunRecorder(run, stop_event)     # pass in the trainer's callbacks
    recorder.failure                            # a Msg when NaN/inf stopped the run

One event per log goes to `metrics.jsonl` (the contract in DESIGN.md §3, plus the extra metrics a
trainer logs, such as DPO's rewards, under the names in EXTRA_METRICS); `status.json` follows the
step for progress and ETA; a set `stop_event` becomes `control.should_training_stop`. NaN/inf are
written as they are and stop the run with a sentence.
"""

from __future__ import annotations

import math
import threading
import time

from transformers import TrainerCallback

from studio.diagnostics import COLLAPSE_STEPS, is_collapsed, watcher_for
from studio.i18n import Msg
from studio.runs import Run

METRIC_NAMES = {"loss": Msg("train.metric_loss"), "eval_loss": Msg("train.metric_eval_loss")}
# Trainer log keys kept under an event name of their own (DPO logs its rewards; eval_ keys are
# the same measured on the validation rows).
EXTRA_METRICS = {
    "rewards/chosen": "rewards_chosen", "rewards/rejected": "rewards_rejected",
    "rewards/margins": "reward_margin", "rewards/accuracies": "reward_accuracy",
    "eval_rewards/chosen": "eval_rewards_chosen", "eval_rewards/rejected": "eval_rewards_rejected",
    "eval_rewards/margins": "eval_reward_margin", "eval_rewards/accuracies": "eval_reward_accuracy",
}


def _number(value):
    return float(value) if isinstance(value, (int, float)) else None


def _distributed_world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class RunRecorder(TrainerCallback):
    """Streams trainer logs into the run folder and honours stop requests."""

    def __init__(self, run: Run, stop_event: threading.Event):
        self.run = run
        self.stop_event = stop_event
        self.failure: Msg | None = None
        self._last_tokens = 0
        self._train_seconds = self._last_train_seconds = 0.0  # excludes eval and saving time
        self._step_started = None
        self._step_ended = None
        self._eval_seconds = 0.0
        self._evals = 0
        self.last_loss: float | None = None
        self.last_eval_loss: float | None = None
        self.watcher = None  # studio.diagnostics.Watcher, built at train begin
        self._grads: list[tuple] = []  # (grad_norm, loss) of each logged train step: the collapse rule

    def on_train_begin(self, args, state, control, **kwargs):
        now = time.time()
        evals = state.max_steps // args.eval_steps if args.eval_strategy != "no" and args.eval_steps else 0
        self.run.update_status(phase="training", message=Msg("train.training"),
                               training_started_at=now, total_steps=state.max_steps, step=0,
                               evals_total=int(evals), evals_done=0, eval_seconds=0.0)
        self.watcher = watcher_for(self.run, args, state, kwargs.get("model"))

    def on_train_end(self, args, state, control, **kwargs):
        """On a GPU, the run's peak GPU memory (status.json `gpu_peak_bytes`; the benchmark reads it)."""
        import torch

        if args.device.type == "cuda":
            self.run.update_status(gpu_peak_bytes=int(torch.cuda.max_memory_allocated(args.device)))

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._step_ended = time.perf_counter()
        if self._step_started is not None:
            self._train_seconds += self._step_ended - self._step_started
        if self._stop_requested(args):
            control.should_training_stop = True
        self.run.update_status(step=state.global_step, epoch=state.epoch)

    def _stop_requested(self, args) -> bool:
        """The stop flag; with several processes every rank must stop at the same step."""
        # A request file in the run folder is how a job manager in another process says Stop
        # (studio.distributed); a stat per step is all it costs.
        stop = self.stop_event.is_set() or self.run.stop_requested()
        if _distributed_world() > 1:
            import torch
            import torch.distributed as dist

            flag = torch.tensor([1 if stop else 0], device=args.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        if stop:  # the job then ends `stopped`, whichever process or file asked for it
            self.stop_event.set()
        return stop

    def on_evaluate(self, args, state, control, **kwargs):
        if self._step_ended is not None:  # evaluation runs right after the step that triggers it
            self._eval_seconds += time.perf_counter() - self._step_ended
            self._step_ended = time.perf_counter()
        self._evals += 1
        self.run.update_status(eval_seconds=round(self._eval_seconds, 3), evals_done=self._evals)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "train_runtime" in logs:  # the end-of-training summary, not a step event
            return
        now = time.time()
        tokens = int(logs.get("num_tokens") or self._last_tokens or 0)
        is_train = "loss" in logs
        speed = None
        if is_train and self._train_seconds > self._last_train_seconds:
            speed = (tokens - self._last_tokens) / (self._train_seconds - self._last_train_seconds)
            self._last_train_seconds, self._last_tokens = self._train_seconds, tokens
        event = {
            "t": now, "step": state.global_step, "epoch": _number(state.epoch),
            "loss": _number(logs.get("loss")), "eval_loss": _number(logs.get("eval_loss")),
            "learning_rate": _number(logs.get("learning_rate")),
            "grad_norm": _number(logs.get("grad_norm")),
            "tokens": tokens, "tokens_per_s": round(speed, 1) if speed is not None else None,
        }
        event.update({name: _number(logs[key]) for key, name in EXTRA_METRICS.items() if key in logs})
        self.run.append_metric(event)
        if self.watcher is not None:  # live diagnostics: rules on the series, events in the run folder
            self.watcher.feed(event)
        if event["loss"] is not None:
            self.last_loss = event["loss"]
        if event["eval_loss"] is not None:
            self.last_eval_loss = event["eval_loss"]
        for name in ("loss", "eval_loss"):
            value = event[name]
            if value is not None and not math.isfinite(value):
                self.failure = Msg("train.not_finite", metric=METRIC_NAMES[name],
                                   value=str(value), step=state.global_step)
                control.should_training_stop = True
        if event["loss"] is not None:
            self._grads.append((event["grad_norm"], event["loss"]))
            if self.failure is None and is_collapsed(self._grads):
                self.failure = Msg("train.collapsed", step=state.global_step, n=COLLAPSE_STEPS,
                                   loss=f"{event['loss']:.4f}")
                control.should_training_stop = True
