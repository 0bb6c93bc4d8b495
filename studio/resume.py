"""Resume a run that crashed, was stopped or failed, from its last complete checkpoint.

    plan = resume_plan(run, ["max_steps=200"])   # what a resume would do, refusals included
    plan["refusals"]                              # [Msg, …]: empty when it can resume
    plan["step"], plan["total"], plan["changes"], plan["skipped"]
    jobs.resume(run, overrides)                   # studio.jobs: prepare_resume + train, one job at a time
    studio train --resume RUN_ID [key=value …]    # the same from a terminal

A checkpoint (`run/checkpoints/checkpoint-N/`, written by the Trainer) is complete only when it has
trainer_state.json, the weights (adapter or model, safetensors or a sharded index) and the
optimizer and scheduler state; an empty or half-written folder (the process died while saving) is
skipped. The run goes on IN THE SAME folder: its state returns to queued/running, config.yaml gets
the changed settings (only those that can change mid-run: more steps, evaluation and checkpoint
cadence, early stopping), logs.txt says "resumed from checkpoint-N".

metrics.jsonl: events after the checkpoint's step are dropped (the resumed run logs those steps
again, so the plots show one line, not two); they are kept in metrics.before-resume.jsonl for
whoever wants to see what was lost.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from studio.config import apply_overrides, field_label, field_specs, get_value, save_recipe, validate
from studio.errors import UserError
from studio.i18n import Msg
from studio.runs import ACTIVE_STATES, Run, owner_alive

WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "model.safetensors.index.json",
           "pytorch_model.bin", "pytorch_model.bin.index.json")
TRAINING_STATE = ("optimizer.pt", "scheduler.pt")
# The settings a resume may change: how long to train and how often to evaluate, log and save.
# Everything else (model, data, method, batch, schedule shape, lengths, seed) would make the
# checkpoint's optimizer state or data position mean something else.
RESUMABLE = ("name", "train.epochs", "train.max_steps", "train.eval_every", "train.log_every",
             "train.save_every", "train.save_total_limit", "train.early_stopping_patience",
             "train.early_stopping_threshold", "train.gradient_checkpointing")


def _nonempty(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def is_complete(folder: Path) -> bool:
    """Does this checkpoint folder hold everything the Trainer needs to resume from it?"""
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(state, dict) or "global_step" not in state:
        return False
    return any(_nonempty(folder / name) for name in WEIGHTS) and all(_nonempty(folder / n) for n in TRAINING_STATE)


def checkpoints(run: Run) -> list[tuple[int, Path, bool]]:
    """Every checkpoint-N folder of the run as (N, path, complete), oldest first."""
    found = []
    root = run.path / "checkpoints"
    if not root.is_dir():
        return []
    for folder in root.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", folder.name)
        if match and folder.is_dir() and not folder.is_symlink():
            found.append((int(match.group(1)), folder, is_complete(folder)))
    return sorted(found, key=lambda item: item[0])


def complete_checkpoints(run: Run) -> list[tuple[int, Path]]:
    """The checkpoints a run can resume from, as (step, path), oldest first."""
    return [(step, path) for step, path, complete in checkpoints(run) if complete]


def last_complete_checkpoint(run: Run) -> tuple[int, Path] | None:
    done = complete_checkpoints(run)
    return done[-1] if done else None


def _total_after(state: dict, cfg) -> int | None:
    """Steps the resumed run will train to: the new max_steps, or the checkpoint's total scaled by epochs."""
    if cfg.train.max_steps:
        return cfg.train.max_steps
    total, epochs = state.get("max_steps"), state.get("num_train_epochs")
    if isinstance(total, int) and isinstance(epochs, (int, float)) and epochs > 0:
        return max(1, round(total / epochs * cfg.train.epochs)) if epochs != cfg.train.epochs else total
    return None


def resume_plan(run: Run, overrides: list[str] | tuple = ()) -> dict:
    """What resuming `run` with `overrides` (key=value) would do.

    Returns {"run", "step", "checkpoint", "total", "changes": [(key, old, new)], "skipped": [step, …],
    "refusals": [Msg, …], "config"}; resuming is possible when "refusals" is empty. Bad override
    syntax raises UserError (one sentence)."""
    status = run.status()
    state = status.get("state")
    refusals: list[Msg] = []
    if state in ACTIVE_STATES and owner_alive(status):
        refusals.append(Msg("resume.still_active", run=run.id))
    elif state == "completed":
        refusals.append(Msg("resume.completed", run=run.id))
    old = run.config()
    new = apply_overrides(old, list(overrides))
    changes = []
    for key in field_specs():
        before, after = get_value(old, key), get_value(new, key)
        if before != after:
            changes.append((key, before, after))
            if key not in RESUMABLE:
                refusals.append(Msg("resume.fixed_setting", label=field_label(key)))
    refusals.extend(validate(new).values())
    found = checkpoints(run)
    last = last_complete_checkpoint(run)
    step = last[0] if last else None
    skipped = [s for s, _, complete in found if not complete and (step is None or s > step)]
    total = None
    if last is None:
        refusals.append(Msg("resume.no_checkpoint", run=run.id))
    else:
        trainer_state = json.loads((last[1] / "trainer_state.json").read_text(encoding="utf-8"))
        total = _total_after(trainer_state, new)
        if total is not None and total <= step:
            refusals.append(Msg("resume.nothing_left", step=step, total=total))
    return {"run": run.id, "step": step, "checkpoint": str(last[1]) if last else None, "total": total,
            "changes": changes, "skipped": skipped, "refusals": refusals, "config": new}


def plan_lines(plan: dict) -> list[Msg]:
    """The plan as sentences: from which step, each changed setting, each skipped checkpoint."""
    lines = [Msg("resume.plan_from", run=plan["run"], step=plan["step"], total=plan["total"] or "?")]
    lines += [Msg("resume.plan_change", label=field_label(key), old=old, new=new)
              for key, old, new in plan["changes"]]
    lines += [Msg("resume.plan_skipped", name=f"checkpoint-{s}") for s in plan["skipped"]]
    return lines


def check_plan(plan: dict) -> None:
    """Raise the first refusal as a UserError (the CLI prints it; the UI shows it by the button)."""
    if plan["refusals"]:
        raise UserError(plan["refusals"][0], key="resume")


def _drop_metrics_after(run: Run, step: int) -> int:
    """Keep metrics.jsonl up to `step`; later events go to metrics.before-resume.jsonl. Returns how many."""
    try:
        lines = run.metrics_path.read_text(encoding="utf-8").splitlines(keepends=True)
    except OSError:
        return 0
    keep, drop = [], []
    for line in lines:
        try:
            event = json.loads(line)
            later = isinstance(event, dict) and isinstance(event.get("step"), int) and event["step"] > step
        except ValueError:
            later = False  # a torn last line of the dead process: not an event, not kept
            if not line.endswith("\n"):
                continue
        (drop if later else keep).append(line)
    if drop:
        with open(run.path / "metrics.before-resume.jsonl", "a", encoding="utf-8") as fh:
            fh.writelines(drop)
    tmp = run.metrics_path.with_name(f".metrics.jsonl.{os.getpid()}.tmp")
    tmp.write_text("".join(keep), encoding="utf-8")
    os.replace(tmp, run.metrics_path)
    return len(drop)


def prepare_resume(run: Run, overrides: list[str] | tuple = ()) -> dict:
    """Check the plan, then make the folder ready to go on: config, metrics, status. Returns the plan.

    Raises UserError (the first refusal) and changes nothing when it cannot resume. The caller
    (studio.jobs.JobManager.resume) holds the one-job lock and then trains from plan["checkpoint"]."""
    plan = resume_plan(run, overrides)
    check_plan(plan)
    if plan["changes"]:
        save_recipe(plan["config"], run.path / ".config.yaml.tmp")
        os.replace(run.path / ".config.yaml.tmp", run.path / "config.yaml")
    dropped = _drop_metrics_after(run, plan["step"])
    run.log(f"resume: from checkpoint-{plan['step']}; {dropped} later metric events moved to "
            "metrics.before-resume.jsonl" + "".join(f"; {k}: {o} -> {n}" for k, o, n in plan["changes"])
            + "".join(f"; skipped incomplete checkpoint-{s}" for s in plan["skipped"]))
    _reopen(run, plan)
    return plan


def _reopen(run: Run, plan: dict) -> None:
    """Put the finished run back to queued, without what belonged to its end."""
    run.reopen(drop=("ended_at", "duration_s", "failure", "output"),
               state="queued", phase="queued", message=Msg("resume.queued", step=plan["step"]),
               step=plan["step"], resumed_from=plan["step"], resumed_at=time.time())