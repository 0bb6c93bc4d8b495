"""The training module: one function that runs an SFT job into a run folder.

    run_training(cfg, run, stop_event)    # blocks; the job manager calls it in a thread

It loads the base model (quantized / frozen / LoRA as the method says), turns the dataset into
TRL prompt-completion records (the model's chat template applied, loss on the answer tokens),
trains with TRL's `SFTTrainer`, and saves the adapter or model as safetensors. `RunRecorder`, a
`TrainerCallback`, appends one event per log to `metrics.jsonl`, keeps `status.json` current for
progress and ETA, and turns a set `stop_event` into `control.should_training_stop`.

Headless, multi-process: `accelerate launch -m studio.train RECIPE.yaml [key=value …]`.
"""

from __future__ import annotations

import math
import sys
import threading
import time
import traceback

from transformers import PrinterCallback, TrainerCallback

from studio.config import StudioConfig
from studio.data import load_rows, split_rows, to_sft_records, write_jsonl
from studio.errors import UserError, explain
from studio.models import device_plan, load_model, peft_config_for
from studio.runs import Run


def _number(value):
    return float(value) if isinstance(value, (int, float)) else None


class RunRecorder(TrainerCallback):
    """Streams trainer logs into the run folder and honours stop requests."""

    def __init__(self, run: Run, stop_event: threading.Event):
        self.run = run
        self.stop_event = stop_event
        self.failure: str | None = None
        self._last_tokens = 0
        self._train_seconds = self._last_train_seconds = 0.0  # excludes eval and saving time
        self._step_started = None
        self.last_loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        now = time.time()
        self.run.update_status(state="running", phase="training", message="Training",
                               training_started_at=now, total_steps=state.max_steps, step=0)

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_started is not None:
            self._train_seconds += time.perf_counter() - self._step_started
        if self.stop_event.is_set():
            control.should_training_stop = True
        self.run.update_status(step=state.global_step, epoch=state.epoch)

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
        self.run.append_metric(event)
        if event["loss"] is not None:
            self.last_loss = event["loss"]
        for name in ("loss", "eval_loss"):
            value = event[name]
            if value is not None and not math.isfinite(value):
                self.failure = (f"The {name.replace('_', ' ')} became {value} at step {state.global_step}: "
                                "lower the learning rate or check the data.")
                control.should_training_stop = True


def _total_steps(n_rows: int, cfg: StudioConfig) -> int:
    t = cfg.train
    if t.max_steps:
        return t.max_steps
    per_epoch = math.ceil(n_rows / t.batch_size / t.grad_accum)
    return max(1, math.ceil(per_epoch * t.epochs))


def build_sft_config(cfg: StudioConfig, run: Run, plan: dict, n_train: int, has_eval: bool):
    from trl import SFTConfig

    t = cfg.train
    total = _total_steps(n_train, cfg)
    eval_every = t.eval_every or max(1, total // 10)
    return SFTConfig(
        output_dir=str(run.path / "checkpoints"),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup if t.warmup < 1 else int(t.warmup),
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        max_length=t.max_length,
        completion_only_loss=t.loss_on == "answer",
        logging_steps=t.log_every,
        logging_nan_inf_filter=False,  # NaN/inf must reach metrics.jsonl and stop the run
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_every,
        save_strategy="steps" if t.save_every else "no",
        save_steps=t.save_every or 500,
        save_total_limit=3,
        bf16=plan["bf16"],
        fp16=plan["fp16"],
        use_cpu=plan["device"] == "cpu",
        activation_checkpointing=plan["gradient_checkpointing"],  # transformers 5 name
        seed=t.seed,
        report_to="none",
        disable_tqdm=True,
        dataset_num_proc=None,
    )


def prepare_data(cfg: StudioConfig, run: Run) -> tuple[list, list]:
    """Load, convert and split the dataset; the splits are written to run/data/ for later tabs."""
    from datasets import Dataset

    rows = load_rows(cfg.data.path, cfg.data.max_samples)
    records = to_sft_records(rows, cfg.data.format, cfg.data.system_prompt)
    train, val, test = split_rows(records, cfg.data.val_size, cfg.data.test_size, cfg.train.seed)
    for name, part in (("train", train), ("val", val), ("test", test)):
        write_jsonl(part, run.path / "data" / f"{name}.jsonl")
    run.log(f"data: {len(rows)} rows -> {len(train)} train / {len(val)} val / {len(test)} test")
    return Dataset.from_list(train), (Dataset.from_list(val) if val else None)


def run_training(cfg: StudioConfig, run: Run, stop_event: threading.Event | None = None) -> dict:
    """Train, save, and leave the run's status final. Returns the final status; never raises."""
    stop_event = stop_event or threading.Event()
    run.update_status(state="running", phase="loading model", message="Loading the base model",
                      started_at=time.time())
    try:
        import datasets
        import transformers
        from trl import SFTTrainer

        # Progress lives in the run folder; library progress bars would only clutter the terminal.
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()

        plan = device_plan(cfg.train, cfg.method.method)
        run.log(f"device plan: {plan}")
        model, tokenizer = load_model(cfg, plan)
        bits = 4 if getattr(model, "is_loaded_in_4bit", False) else 8 if getattr(model, "is_loaded_in_8bit", False) else 0
        run.log(f"model: {type(model).__name__}, {model.num_parameters():,} parameters"
                + (f", quantized {bits}-bit" if bits else ""))
        if stop_event.is_set():
            return run.update_status(state="stopped", phase="stopped", ended_at=time.time(),
                                     message="Stopped before training began.")
        run.update_status(phase="preparing data", message="Preparing the dataset")
        train_ds, eval_ds = prepare_data(cfg, run)
        recorder = RunRecorder(run, stop_event)
        trainer = SFTTrainer(
            model=model,
            args=build_sft_config(cfg, run, plan, len(train_ds), eval_ds is not None),
            train_dataset=train_ds,
            eval_dataset=eval_ds,
            processing_class=tokenizer,
            peft_config=peft_config_for(cfg.method),
            callbacks=[recorder],
        )
        trainer.remove_callback(PrinterCallback)  # progress goes to the run folder, not stdout
        trainer.train()
        run.update_status(phase="saving", message="Saving the result", training_ended_at=time.time())
        out_dir = run.path / ("adapter" if cfg.method.method in ("lora", "qlora") else "model")
        trainer.save_model(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
        step = trainer.state.global_step
        run.update_status(final_loss=recorder.last_loss)
        if recorder.failure:
            run.log(recorder.failure)
            return run.update_status(state="failed", phase="failed", ended_at=time.time(),
                                     message=recorder.failure, step=step)
        state = "stopped" if stop_event.is_set() else "completed"
        verb = "Stopped" if state == "stopped" else "Finished"
        message = f"{verb} after {step} steps; saved to {out_dir}"
        run.log(message)
        return run.update_status(state=state, phase=state, ended_at=time.time(), message=message,
                                 step=step, output=str(out_dir))
    except BaseException as exc:  # the run must end in a final state whatever happened
        run.log(traceback.format_exc())
        message = explain(exc)
        return run.update_status(state="failed", phase="failed", ended_at=time.time(), message=message)


def main(argv: list[str] | None = None) -> int:
    """`python -m studio.train RECIPE [key=value …]`, e.g. under `accelerate launch`."""
    from studio.config import check, from_command_line
    from studio.models import check_model
    from studio.paths import studio_home
    from studio.runs import RunStore

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = check(from_command_line(argv))
        check_model(cfg.model)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = RunStore(studio_home()).create(cfg)
    status = run_training(cfg, run)
    print(f"{status['state']}: {status['message']}")
    return 0 if status["state"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
