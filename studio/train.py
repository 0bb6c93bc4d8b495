"""Training: the work function that runs an SFT job into a run folder.

    run_training(run, stop_event)    # a job manager work function (studio.jobs): reads run.config()
    run_training(run, stop_event, resume_from=checkpoint)   # go on from a checkpoint (studio.resume)
    trainer, recorder = build_trainer(cfg, run, stop_event)   # the TRL trainer, ready to train

It loads the base model (quantized / frozen / LoRA as the method says), turns the dataset into
TRL prompt-completion records (the model's chat template applied, loss on the answer tokens),
trains with TRL's `SFTTrainer`, and saves the adapter or model as safetensors. `RunRecorder`, a
`TrainerCallback`, appends one event per log to `metrics.jsonl`, keeps `status.json` current for
progress and ETA, and turns a set `stop_event` into `control.should_training_stop`. The job
manager owns the run's state (running, then failed / stopped / completed); this module only
reports phases and returns what it produced.

Several processes (DDP), one run folder:

    torchrun --nproc_per_node 2 -m studio.train recipes/demo.yaml epochs=1 [--home DIR]   # CPU
    accelerate launch --multi_gpu --num_processes 2 -m studio.train recipes/demo.yaml [--home DIR]  # GPUs

Rank 0 checks the settings, creates the run folder and broadcasts its id; every rank trains, only
rank 0 records status, metrics, logs and the result; the other ranks write to a scratch folder
that is removed at the end.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from transformers import PrinterCallback, TrainerCallback

from studio.config import StudioConfig, is_adapter_method, total_steps
from studio.data import report_messages, training_splits, write_jsonl, write_manifest
from studio.errors import UserError
from studio.formats import to_dataset
from studio.i18n import Msg, t
from studio.estimate import device_plan_for
from studio.models import load_model, peft_config_for
from studio.startup import imports_settled
from studio.recorder import RunRecorder
from studio.runs import Run
from studio.trackers import reporting, training_kwargs

EVAL_ROWS = 200  # eval loss is measured on at most this many validation rows (a seeded sample)
EVALS_PER_RUN = 10  # and at most about this many times a run


def eval_interval(cfg: StudioConfig, total_steps: int, eval_rows: int = EVAL_ROWS) -> int:
    """Steps between evaluations, so that short runs are not mostly evaluation.

    Every `eval_every` steps when the user asked for that. By default about EVALS_PER_RUN times
    a run, and no more often than training has seen as many rows as one evaluation reads (an
    evaluation is a forward pass only, so it then costs at most about a quarter of the run); the
    last step is always evaluated at least once.
    """
    t = cfg.train
    if t.eval_every:
        return t.eval_every
    interval = max(math.ceil(total_steps / EVALS_PER_RUN), math.ceil(eval_rows / (t.batch_size * t.grad_accum)))
    return max(1, min(interval, total_steps))


def training_arguments(cfg: StudioConfig, run: Run, plan: dict, n_train: int, n_eval: int) -> dict:
    """The TrainingArguments every trainer here shares (SFTConfig and DPOConfig take them all)."""
    t = cfg.train
    total = total_steps(n_train, cfg)
    eval_steps = eval_interval(cfg, total, n_eval)
    early = t.early_stopping_patience > 0
    if early and not n_eval:  # validate() refuses this up front; a split that came out empty lands here
        raise UserError("resume.early_stopping_needs_val", key="train.early_stopping_patience")
    # Checkpoints: every `save_every` steps, or by default ("auto", 0) at every evaluation
    # (about EVALS_PER_RUN a run, or as often on runs without validation data), so a crash or a
    # stop loses little and `studio train --resume` has somewhere to continue from (at most one
    # a minute when the studio chose the cadence: PacedCheckpoints); disk use stays bounded by
    # save_total_limit. Early stopping needs a checkpoint at every evaluation
    # (transformers: save steps a multiple of eval steps), so it saves exactly then.
    save_steps = eval_steps if early or not t.save_every else t.save_every
    best = dict(load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False) if early else {}
    return dict(
        **best,
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
        logging_steps=t.log_every,
        logging_nan_inf_filter=False,  # NaN/inf must reach metrics.jsonl and stop the run
        eval_strategy="steps" if n_eval else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=t.save_total_limit,
        bf16=plan["bf16"],
        fp16=plan["fp16"],
        use_cpu=plan["device"] == "cpu",
        activation_checkpointing=plan["gradient_checkpointing"],  # transformers 5 name
        seed=t.seed,
        ddp_find_unused_parameters=False,  # every trainable weight is used; saves a graph walk
        **training_kwargs(cfg, run),  # report_to: the trackers of train.report_to, or "none"; run_name = run id
        disable_tqdm=True,
        dataset_num_proc=None,
    )


def build_sft_config(cfg: StudioConfig, run: Run, plan: dict, n_train: int, n_eval: int):
    from trl import SFTConfig

    t = cfg.train
    # Packing concatenates short examples into rows of max_length ("bfd": no example is split
    # across rows); TRL then trains padding-free, the model's attention keeping examples apart by
    # their position ids, and the loss mask of completion-only loss travels with each example.
    return SFTConfig(**training_arguments(cfg, run, plan, n_train, n_eval),
                     max_length=t.max_length, completion_only_loss=t.loss_on == "answer",
                     neftune_noise_alpha=t.neftune_alpha or None, packing=t.packing)


def trainer_callbacks(cfg: StudioConfig, recorder: RunRecorder) -> list:
    """The callbacks of every trainer: the run recorder first, the pacing of automatic checkpoints
    when the studio chose the cadence, saving on Stop, then early stopping when it is on."""
    t = cfg.train
    paced = not (t.save_every or t.eval_every or t.early_stopping_patience)  # the studio chose the cadence
    # SaveOnStop after the pacing: a Stop always saves.
    callbacks = [recorder, *([PacedCheckpoints()] if paced else []), SaveOnStop(recorder.stop_event)]
    if t.early_stopping_patience > 0:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=t.early_stopping_patience,
                                               early_stopping_threshold=t.early_stopping_threshold))
    return callbacks


class SaveOnStop(TrainerCallback):
    """A run the user stops saves a checkpoint at that step, so Resume goes on from exactly there."""

    def __init__(self, stop_event: threading.Event):
        self.stop_event = stop_event

    def on_step_end(self, args, state, control, **kwargs):
        if self.stop_event.is_set():
            control.should_save = True


class PacedCheckpoints(TrainerCallback):
    """At most one automatic checkpoint a minute, and always the last step's.

    By default the studio saves at every evaluation (about EVALS_PER_RUN a run) so that a crash
    loses little. On a short run that is a checkpoint every few seconds, each one writing the
    adapter, the optimizer state and the trainer state: 7% of a 9-second 7M-model run (8 saves,
    0.64 s measured with py-spy), time spent on nothing the user asked for. Checkpoints the user
    asked for (Save every, Evaluate every, early stopping) and the one a Stop writes are kept;
    this only drops an automatic one that comes less than MIN_GAP_S after the last."""

    MIN_GAP_S = 60.0

    def __init__(self):
        self.last = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if (control.should_save and not control.should_training_stop and state.global_step < state.max_steps
                and time.monotonic() - self.last < self.MIN_GAP_S):
            control.should_save = False

    def on_save(self, args, state, control, **kwargs):
        self.last = time.monotonic()


def stopped_early(trainer, output: str = "") -> Msg | None:
    """The sentence for a run that early stopping ended (step, best eval loss), else None."""
    from transformers import EarlyStoppingCallback

    state = trainer.state
    for callback in trainer.callback_handler.callbacks:
        if (isinstance(callback, EarlyStoppingCallback)
                and callback.early_stopping_patience_counter >= callback.early_stopping_patience
                and state.best_metric is not None):
            best = Path(state.best_model_checkpoint or "").name or "-"
            return Msg("resume.early_stopped", step=state.global_step, best=f"{state.best_metric:.4f}",
                       checkpoint=best, output=output)
    return None


def prepare_data(cfg: StudioConfig, run: Run, tokenizer=None) -> tuple[list, list]:
    """Load, convert and split the dataset; the splits are written to run/data/ for later tabs.

    The rows that train are exactly the ones `check_training_data` reported: the same rule
    (`trainable_records`) leaves out conversations longer than Max length, so no answer is cut.
    A library dataset (`library:<id>`) or a mix (data.mix) brings its own splits; its test split
    is written to data/test.jsonl and never trained. data/manifest.json records the exact
    dataset hashes the run trained on. Metadata keys (`_row`, …) never reach the trainer.
    """

    home = run.path.parent.parent  # <home>/runs/<id>; a scratch rank folder has no library
    splits, report = training_splits(cfg, tokenizer, home if (home / "datasets").is_dir() else None)
    for line in report_messages(report):
        run.log(f"data: {line}")
    for name, part in splits.items():
        write_jsonl(part, run.path / "data" / f"{name}.jsonl")
    write_manifest(run.path / "data" / "manifest.json", cfg, splits, report)
    train, val, test = splits["train"], splits["val"], splits["test"]
    run.log(f"data: {report['kept']} rows -> {len(train)} train / {len(val)} val / {len(test)} test")
    # Tool schemas stay JSON values (not merged structs); tool parts the template cannot show become text.
    return to_dataset(train, tokenizer), (to_dataset(val, tokenizer) if val else None)


def eval_sample(eval_ds, seed: int):
    """At most EVAL_ROWS validation rows, the same ones for every evaluation of the run."""
    if eval_ds is None or len(eval_ds) <= EVAL_ROWS:
        return eval_ds
    return eval_ds.shuffle(seed=seed).select(range(EVAL_ROWS))


def build_trainer(cfg: StudioConfig, run: Run, stop_event: threading.Event, plan: dict | None = None):
    """Load the model and data for cfg and return (trainer, RunRecorder), ready to train:
    TRL's SFTTrainer, or its DPOTrainer for the dpo stage (studio.train_dpo)."""
    plan = plan or device_plan_for(cfg)
    if cfg.method.stage == "dpo":
        from studio.train_dpo import build_dpo_trainer

        return build_dpo_trainer(cfg, run, stop_event, plan)
    return build_sft_trainer(cfg, run, stop_event, plan)


def load_for_training(cfg: StudioConfig, run: Run, plan: dict):
    """The model and tokenizer, loaded as the method says, with what was loaded in logs.txt."""
    imports_settled()  # both trainers' libraries are imported by now (studio.startup)
    run.log(f"device plan: {plan}")
    run.update_status(phase="loading model", message=Msg("train.loading_model"))
    model, tokenizer = load_model(cfg, plan)
    bits = 4 if getattr(model, "is_loaded_in_4bit", False) else 8 if getattr(model, "is_loaded_in_8bit", False) else 0
    run.log(f"model: {type(model).__name__}, {model.num_parameters():,} parameters"
            + (f", quantized {bits}-bit" if bits else ""))
    if getattr(model, "studio_unquantized", None):  # layers the CPU 4-bit kernel cannot pack
        run.log("left unquantized (shape unfit for the CPU 4-bit kernel): " + ", ".join(model.studio_unquantized))
    return model, tokenizer


def build_sft_trainer(cfg: StudioConfig, run: Run, stop_event: threading.Event, plan: dict):
    from studio.answer_loss import AnswerLossSFTTrainer, answer_loss_applies

    model, tokenizer = load_for_training(cfg, run, plan)
    run.update_status(phase="preparing data", message=Msg("train.preparing_data"))
    train_ds, eval_ds = prepare_data(cfg, run, tokenizer)
    eval_ds = eval_sample(eval_ds, cfg.train.seed)
    recorder = RunRecorder(run, stop_event)
    trainer = AnswerLossSFTTrainer(
        model=model,
        args=build_sft_config(cfg, run, plan, len(train_ds), len(eval_ds) if eval_ds is not None else 0),
        data_collator=padding_free_collator(cfg, plan, model, tokenizer, run),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config_for(cfg.method),
        callbacks=trainer_callbacks(cfg, recorder),
    )
    trainer.remove_callback(PrinterCallback)  # progress goes to the run folder, not stdout
    # On CPUs the LM head runs on the trained tokens only (the same loss, less work).
    trainer.answer_loss = answer_loss_applies(trainer.model, plan["device"], cfg.method.method,
                                              trainer.accelerator.num_processes)
    run.log(f"loss: LM head on {'trained tokens only' if trainer.answer_loss else 'every position (TRL)'}")
    cpu_speed_ups(trainer.model, plan, run)
    return trainer, recorder


def padding_free_collator(cfg: StudioConfig, plan: dict, model, tokenizer, run: Run):
    """TRL's collator in padding-free mode where the device plan allows it and the model runs the
    studio's CPU attention, which attends each example on its own; None = TRL's padded batches.

    Each step trains the same rows as a padded batch, with the same positions and loss tokens:
    only the padding is gone (a fifth of the tokens on the benchmark's rows, more on data of
    mixed lengths). Rows are cut to Max length while TRL prepares the data, as they are padded;
    with packing on, TRL's own padding-free packing takes over. Not with NEFTune, whose noise
    scales with the row's length (a row of several examples would get less), nor for models that
    do not hand their attention the example boundaries (`_supports_attention_backend`)."""
    from studio.cpu_speed import CPU_ATTENTION, PACKED_ATTENTION

    attention = getattr(model.config, "_attn_implementation", None)
    if (not plan.get("padding_free") or cfg.train.packing or cfg.train.neftune_alpha
            or attention not in (CPU_ATTENTION, PACKED_ATTENTION)
            or not getattr(type(model), "_supports_attention_backend", False)):
        return None
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    run.log("batches: padding-free (examples end to end, attended one by one)")
    return DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)


def cpu_speed_ups(model, plan: dict, run: Run) -> None:
    """studio.cpu_speed's LoRA kernels where the device plan says so (CPU runs)."""
    if plan.get("lora_kernels"):
        from studio.cpu_speed import speed_up_lora

        if changed := speed_up_lora(model, autocast_bf16=plan["bf16"]):
            run.log(f"cpu: {changed} LoRA layers use 16-bit dropout masks"
                    + (", bf16 inputs" if plan["bf16"] else ""))


def run_training(run: Run, stop_event: threading.Event, resume_from: str | None = None) -> dict:
    """The training work function: train run.config(), save the result, return what happened.

    `resume_from` is a complete checkpoint folder of this run (studio.resume): training goes on
    from its step, with its weights, optimizer, scheduler and data position.
    Raises on faults; the job manager (studio.jobs.run_job) turns that into a failed run."""
    import datasets
    import transformers

    # Progress lives in the run folder; library progress bars would only clutter the terminal.
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    cfg = run.config()
    plan = device_plan_for(cfg)
    if plan.get("threads"):  # torch would size its pool from the host's cores, not the CPUs we may use
        import torch

        torch.set_num_threads(plan["threads"])
    if stop_event.is_set():
        return {"message": Msg("train.stopped_before")}
    with reporting(cfg, run):  # the trackers of train.report_to point at this run (runs/<id>/trackers.json)
        trainer, recorder = build_trainer(cfg, run, stop_event, plan)
        if stop_event.is_set():
            return {"message": Msg("train.stopped_before")}
        if resume_from:
            run.log(f"resumed from {Path(resume_from).name}")
            # TRL counts trained tokens from 0 in each process: go on from the count the kept metrics
            # end with, so `tokens` keeps rising and tokens/s is not measured against the old total.
            kept = [e.get("tokens") for e in run.read_metrics() if isinstance(e.get("tokens"), int)]
            if kept and hasattr(trainer, "_total_train_tokens"):
                trainer._total_train_tokens = recorder._last_tokens = kept[-1]
        trainer.train(resume_from_checkpoint=resume_from or None)
    run.update_status(phase="saving", message=Msg("train.saving"), training_ended_at=time.time())
    out_dir = run.path / ("adapter" if is_adapter_method(cfg.method.method) else "model")
    trainer.save_model(str(out_dir))
    if trainer.args.should_save:
        trainer.processing_class.save_pretrained(str(out_dir))
    step = trainer.state.global_step
    outcome = {"step": step, "final_loss": recorder.last_loss, "final_eval_loss": recorder.last_eval_loss,
               "failure": recorder.failure}
    if recorder.failure is None:
        done = "train.stopped_after" if stop_event.is_set() else "train.finished"
        early = None if stop_event.is_set() else stopped_early(trainer, str(out_dir))
        outcome.update(output=str(out_dir), message=early or Msg(done, steps=step, output=str(out_dir)))
        if early is not None:
            run.log(str(early))
    return outcome


def _rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes, from torchrun's / accelerate's environment."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _share_run_id(run_id: str | None) -> str | None:
    """Rank 0's run id (None = it refused the settings), for every rank."""
    import torch.distributed as dist

    box = [run_id]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def existing_run(store, run_id: str) -> Run:
    try:
        return store.get(run_id)
    except KeyError:
        raise UserError("train.unknown_run_id", run=run_id, home=str(store.root.parent)) from None


def main(argv: list[str] | None = None) -> int:
    """`python -m studio.train RECIPE [key=value …] [--home DIR]`, alone or under torchrun/accelerate."""
    from studio.config import from_command_line
    from studio.jobs import JobManager, run_training as work, stop_jobs_on_sigterm
    from studio.paths import studio_home
    from studio.runs import RunStore

    parser = argparse.ArgumentParser(prog="python -m studio.train", description=t("train.main_help"))
    parser.add_argument("items", nargs="*", metavar="RECIPE.yaml | key=value")
    parser.add_argument("--home", default=None, help=t("train.home_help"))
    parser.add_argument("--run-id", default=None, help=t("train.run_id_help"))
    parser.add_argument("--resume-from", default=None, help=t("train.resume_from_help"))
    args = parser.parse_args(argv)
    if args.resume_from:
        work = functools.partial(work, resume_from=args.resume_from)
    rank, world = _rank_and_world()
    if world > 1:
        from accelerate import PartialState

        PartialState()  # joins the process group torchrun / accelerate launch set up (gloo on CPU)
    scratch = None
    try:
        store = RunStore(studio_home(args.home))
        # --run-id: the studio's job manager checked the settings and made the folder; train into it.
        cfg = existing_run(store, args.run_id).config() if args.run_id else from_command_line(args.items)
        if rank == 0:
            jobs = JobManager(store)
            try:
                if args.run_id:
                    run = existing_run(store, args.run_id)
                else:
                    jobs.check(cfg)
                    run = jobs.create(cfg)
            except UserError:
                if world > 1:
                    _share_run_id(None)  # the other ranks stop too
                raise
            if world > 1:
                _share_run_id(run.id)
        else:
            if _share_run_id(None) is None:
                return 2
            studio_home(args.home)  # library:<id> datasets resolve against rank 0's home
            scratch = Path(tempfile.mkdtemp(prefix=f"studio-rank{rank}-"))
            jobs = JobManager(RunStore(scratch))
            run = jobs.create(cfg)  # the same settings; its records go nowhere that matters
    except UserError as exc:
        print(t("train.error_line", error=exc.msg), file=sys.stderr)
        return 2
    try:
        jobs.submit(run, work)
        stop_jobs_on_sigterm(interrupt_main=False)  # torchrun passes SIGTERM on to every rank: all stop at one step
        try:
            jobs.wait()
        except KeyboardInterrupt:
            jobs.stop()
            jobs.wait()
        status = run.status()
        if rank == 0:
            print(t("train.final_line", state=Msg("state." + status["state"]), message=run.message()))
        return 0 if status["state"] == "completed" else 1
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
