"""Runs compared: loss curves, config differences, scores and A/B win rates of chosen runs, and the
housekeeping of one run (export as a recipe, rename, delete).

    runs = pick_runs(store, ["<id a>", "<id b>"])     # UserError for an unknown or malformed id
    names = display_names(runs)                       # {run id: label, or the id}, unique
    curve_rows(runs, names)      # [{"run", "step", "series": "loss"|"eval_loss", "value"}] (long form)
    final_losses(run)            # {"loss": 0.41, "eval_loss": 0.52}: the last of each
    config_diff(runs)            # [{"setting": "train.learning_rate", "values": [2e-4, 1e-3]}]
    score_rows(runs)             # [{"metric", "values": [{"base", "tuned", "data"} | None, …]}]
    vote_rows(home, runs)        # per run: A/B votes against anyone, and head to head
    text, command = export_recipe(run, path, home)   # a recipe `studio train` accepts + its command
    rename_run(run, "lr 1e-3")   # a label in runs/<id>/label.txt; the folder id never changes
    delete_run(store, run_id, jobs)                  # refuses an active run; removes the folder

The run folder stays the source of truth: nothing here is cached. A label is a file of its own
(not a key in status.json) so renaming never races the job thread or another process writing
the status. Scores come from `studio.evaluate` (the newest test-set evaluation of each run) and
votes from `studio.arena` (`<home>/arena/votes.jsonl`, the same win-rate rule as the arena).
"""

from __future__ import annotations

import math
import shlex
import shutil
from pathlib import Path

import yaml

from studio.config import field_specs, from_dict, get_value, to_dict
from studio.errors import UserError
from studio.runs import ACTIVE_STATES, LABEL_FILE, MAX_LABEL, Run, RunStore, _write_text_atomic, one_line
MAX_RUNS = 8  # more lines than this make the overlay unreadable
SERIES = ("loss", "eval_loss")


# --- which runs -----------------------------------------------------------------------------------

def get_run(store: RunStore, run_id) -> Run:
    """The run with this id, or UserError (ids from a client are checked by RunStore.get)."""
    try:
        return store.get(str(run_id or "").strip())
    except KeyError:
        raise UserError("compare.unknown_run", run=str(run_id)[:80]) from None


def pick_runs(store: RunStore, run_ids) -> list[Run]:
    """The chosen runs in the order given, each once; UserError for an unknown id or too many."""
    ids = list(dict.fromkeys(str(r).strip() for r in (run_ids or []) if str(r).strip()))
    if len(ids) > MAX_RUNS:
        raise UserError("compare.too_many", count=len(ids), most=MAX_RUNS)
    return [get_run(store, rid) for rid in ids]


def run_label(run: Run) -> str:
    """The label given to a run (rename_run), else the config's name; '' when it has neither
    (Run.label: the one reader, which Run.summary and so every run list use too)."""
    return run.label()


def display_names(runs: list[Run]) -> dict[str, str]:
    """{run id: what a legend or a column calls it}: its label, or its id; a label shared by
    two chosen runs gets the id added, so no two lines or columns carry the same name."""
    labels = {run.id: run_label(run) for run in runs}
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return {rid: (label if label and counts[label] == 1 else f"{label} · {rid}" if label else rid)
            for rid, label in labels.items()}


# --- what to compare ------------------------------------------------------------------------------

def _number(value):
    """A finite float, or None (metrics.jsonl writes NaN/inf as strings; those are not plotted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def curve_rows(runs: list[Run], names: dict[str, str] | None = None) -> list[dict]:
    """Train and eval loss by step of every run, long form for one overlay plot."""
    names = names or display_names(runs)
    rows = []
    for run in runs:
        for event in run.read_metrics():
            step = _number(event.get("step"))
            if step is None:
                continue
            for series in SERIES:
                value = _number(event.get(series))
                if value is not None:
                    rows.append({"run": names[run.id], "step": int(step), "series": series, "value": value})
    return rows


def final_losses(run: Run) -> dict:
    """{"loss", "eval_loss"}: the last finite value of each in the run's metrics (None if none)."""
    found = {"loss": None, "eval_loss": None}
    for event in run.read_metrics():
        for series in SERIES:
            value = _number(event.get(series))
            if value is not None:
                found[series] = value
    return found


def _config_or_none(run: Run):
    try:
        return run.config()
    except Exception:  # a config that cannot be read shows as a gap, not a failed comparison
        return None


def config_diff(runs: list[Run]) -> list[dict]:
    """The settings whose values differ between the runs, in form order: one row per setting
    with one value per run (None where a run's config cannot be read)."""
    configs = [_config_or_none(run) for run in runs]
    rows = []
    for key in field_specs():
        values = [get_value(cfg, key) if cfg is not None else None for cfg in configs]
        if len({repr(v) for v in values}) > 1:
            rows.append({"setting": key, "values": values})
    return rows


def _newest_test_scores(run: Run) -> dict | None:
    from studio.evaluate import run_evaluations

    return next((s for s in run_evaluations(run) if s.get("role", "test") == "test"), None)


def score_rows(runs: list[Run]) -> list[dict]:
    """Each run's newest test-set evaluation side by side: one row per metric, one cell per run
    ({"base", "tuned", "data"}, None for a run never evaluated). Empty when no run was."""
    from studio.evaluate import METRICS

    newest = [_newest_test_scores(run) for run in runs]
    if not any(newest):
        return []
    rows = []
    for metric in METRICS:
        cells = [None if s is None else {"base": _number(s["base"].get(metric)), "tuned": _number(s["tuned"].get(metric)),
                                         "data": s.get("data_label") or s.get("data") or ""}
                 for s in newest]
        rows.append({"metric": metric, "values": cells})
    return rows


def vote_rows(home: Path, runs: list[Run], store=None) -> list[dict]:
    """A/B votes involving each run (arena ids 'run:<id>'), per run: {"run", "votes", "wins",
    "losses", "ties", "both_bad", "win_rate", "head_to_head": {other id: {"votes", "wins",
    "win_rate"}}}. A win rate is the share of votes won outright (arena.win_rates' rule);
    None without votes. With `store` (the reader's: demo mode's scoped one) only the votes whose
    runs that reader may see count (arena.visible_votes)."""
    from studio.arena import VoteStore, pair_summary, visible_votes, win_rates

    votes = VoteStore(home).all()
    if store is not None:
        votes = visible_votes(votes, store)
    pairs = win_rates(votes)
    rows = []
    for run in runs:
        me = f"run:{run.id}"
        total = {"votes": 0, "wins": 0, "losses": 0, "ties": 0, "both_bad": 0}
        for pair in pairs:
            if me not in (pair["a"], pair["b"]):
                continue
            mine, theirs = ("a", "b") if pair["a"] == me else ("b", "a")
            total["votes"] += pair["votes"]
            total["wins"] += pair[f"{mine}_wins"]
            total["losses"] += pair[f"{theirs}_wins"]
            total["ties"] += pair["ties"]
            total["both_bad"] += pair["both_bad"]
        head = {}
        for other in runs:
            summary = pair_summary(votes, me, f"run:{other.id}") if other.id != run.id else None
            if summary:
                head[other.id] = {"votes": summary["votes"], "wins": summary["a_wins"], "win_rate": summary["a_rate"]}
        rate = total["wins"] / total["votes"] if total["votes"] else None
        rows.append({"run": run.id, **total, "win_rate": rate, "head_to_head": head})
    return rows


# --- one run's housekeeping -----------------------------------------------------------------------

def recipe_command(path: str | Path, home: str | Path | None = None) -> str:
    """The exact `studio train` command for a recipe file (quoted for a POSIX shell)."""
    parts = ["studio", "train", str(path)] + (["--home", str(home)] if home else [])
    return shlex.join(parts)


def export_recipe(run: Run, path: str | Path | None = None, home: str | Path | None = None) -> tuple[str, str]:
    """(YAML text, command): the run's settings as a standalone recipe whose first line is the
    command that trains it (the recipes/ convention), and that command. `path` is where the
    recipe will be saved (default `<run id>.yaml` in the current folder); `home` is added as
    `--home`. The text loads back to exactly the run's config (checked here)."""
    cfg = run.config()
    command = recipe_command(path or f"{run.id}.yaml", home)
    label = run_label(run)
    header = [f"# {command}",
              f"# Exported from run {run.id}" + (f" ({_one_line(label)})" if label else "") + ".",
              "# The settings that run was trained with; edit them or add key=value after the command."]
    text = "\n".join(header) + "\n" + yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)
    if from_dict(yaml.safe_load(text), source=f"{run.id}.yaml") != cfg:  # never hand out a recipe that drifts
        raise UserError("compare.export_mismatch", run=run.id)
    return text, command


def write_recipe(run: Run, folder: Path, home: str | Path | None = None) -> tuple[Path, str, str]:
    """Save the exported recipe as `<folder>/<run id>.yaml`; (path, text, command)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run.id}.yaml"
    text, command = export_recipe(run, path, home)
    _write_text_atomic(path, text)
    return path, text, command


def _one_line(text: str) -> str:
    return one_line(text)


def clean_label(label) -> str:
    """A label as stored: one line of printable characters, at most MAX_LABEL of them."""
    text = _one_line(label or "")
    if len(text) > MAX_LABEL:
        raise UserError("compare.label_too_long", most=MAX_LABEL)
    return text


def rename_run(run: Run, label) -> str:
    """Give the run a label (shown by the Runs tab and `studio runs`); '' removes it. The run
    id, and so its folder, never changes: commands and links that name it keep working."""
    text = clean_label(label)
    path = run.path / LABEL_FILE
    if text:
        _write_text_atomic(path, text + "\n")
    else:
        path.unlink(missing_ok=True)
    return text


def delete_run(store: RunStore, run_id, jobs=None) -> str:
    """Remove a run's folder; its id. Refused (UserError) for an unknown id, a run that is queued,
    running or stopping, and a run the job manager `jobs` is working on (an evaluation of it).
    Only a folder directly inside the store's runs/ is removed, never through a link."""
    run = get_run(store, run_id)
    state = run.status().get("state")
    if state in ACTIVE_STATES:
        raise UserError("compare.delete_active", run=run.id, state=state)
    active = jobs.active_run() if jobs is not None else None
    if active is not None and (active.id == run.id or getattr(getattr(active, "of_run", None), "id", None) == run.id):
        raise UserError("compare.delete_busy", run=run.id)
    root = store.root.resolve()
    if run.path.is_symlink() or run.path.resolve().parent != root:
        raise UserError("compare.unknown_run", run=run.id)
    shutil.rmtree(run.path)
    return run.id
