"""`studio sweep`: a quick sweep of one setting from a terminal (studio/sweep.py does the work).

    studio sweep recipes/demo.yaml --param learning_rate --values 1e-4,3e-4 [key=value …] [--json]

Prints one line per trial as it ends (value, state, final eval/train loss, run id), then the best
value and the command for the full run; `--json` prints the sweep record instead. Exit 0 when a
best value was found, 1 when none was (every trial failed or the sweep was stopped), 2 on bad
input (one `error: …` line, printed by cli.main). Ctrl-C stops the current trial and the rest.

Registered by studio/cli.py: `add_commands(sub, add_home)` and `COMMANDS`.
"""

from __future__ import annotations

import json
import time

from studio.i18n import render, t


def add_commands(sub, add_home) -> None:
    sweep = sub.add_parser("sweep", help=t("sweep.cli.help"), description=t("sweep.cli.example"))
    add_home(sweep)
    sweep.add_argument("items", nargs="*", metavar="RECIPE.yaml | key=value", help=t("sweep.cli.help_items"))
    sweep.add_argument("--param", required=True, help=t("sweep.cli.help_param"))
    sweep.add_argument("--values", required=True, help=t("sweep.cli.help_values"))
    sweep.add_argument("--json", action="store_true", help=t("sweep.cli.help_json"))


def _loss(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def trial_line(trial: dict) -> str:
    return t("sweep.cli.trial", label=trial["label"], state=t("sweep.state." + trial["state"]),
             eval_loss=_loss(trial.get("final_eval_loss")), loss=_loss(trial.get("final_loss")),
             run=trial.get("run_id") or "-")


def best_line(record: dict) -> str:
    best = record.get("best")
    if not best:
        return t("sweep.no_best")
    by = t("sweep.by." + best["by"])
    return t("sweep.best", label=record["trials"][best["index"]]["label"], loss=_loss(best["loss"]), by=by)


def cmd_sweep(args, home) -> int:
    from studio.config import from_command_line
    from studio.jobs import JobManager
    from studio.runs import RunStore
    from studio.sweep import SweepSpec, start_sweep, value_text

    cfg = from_command_line(args.items)
    spec = SweepSpec.parse(args.param, args.values, cfg)
    jobs = JobManager(RunStore(home))
    sweep = start_sweep(jobs, cfg, spec)
    if not args.json:
        print(t("sweep.cli.started", id=sweep.id, count=len(spec.values), param=spec.param,
                steps=_short_text(sweep.record())), flush=True)
    shown = set()
    try:
        while sweep.alive():
            shown = _print_ended(sweep.record(), shown, args.json)
            time.sleep(0.5)
    except KeyboardInterrupt:
        print(t("sweep.cli.stopping"), flush=True)
        sweep.stop()
        sweep.wait()
    record = sweep.record()
    if args.json:
        print(json.dumps(record, indent=1))
    else:
        _print_ended(record, shown, False)
        print(best_line(record), flush=True)
        if record.get("best"):
            print(t("sweep.cli.next", items=" ".join(args.items),
                    setting=f"{spec.param}={value_text(record['best']['value'])}"), flush=True)
    return 0 if record.get("best") else 1


def _short_text(record: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in record["short"].items())


def _print_ended(record: dict, shown: set, quiet: bool) -> set:
    for index, trial in enumerate(record["trials"]):
        if index not in shown and trial["state"] in ("completed", "stopped", "failed", "crashed", "skipped"):
            shown = shown | {index}
            if not quiet:
                print(trial_line(trial), flush=True)
                if trial["state"] == "failed" and trial.get("message"):
                    print("  " + render(trial["message"]), flush=True)
    return shown


COMMANDS = {"sweep": cmd_sweep}
