"""`studio runs compare|export|rename|delete`: runs side by side, and one run's housekeeping.

    studio runs compare RUN_A RUN_B [--json]     # settings that differ, final losses, scores, votes, trackers
    studio runs export RUN_ID [--out FILE]       # a recipe `studio train` accepts (stdout, or FILE)
    studio runs rename RUN_ID "lr 1e-3"          # a label; the id and folder stay ('' removes it)
    studio runs delete RUN_ID --yes              # without --yes: one line, exit 2

`studio runs` alone still lists the runs (studio/cli.py). The work is in studio/compare.py, the
same functions the Runs tab calls; refusals are UserErrors, printed by cli.main as one line, exit 2.
"""

from __future__ import annotations

import json

from studio.i18n import t
from studio.paths import expand_user

SUBCOMMANDS = ("compare", "export", "rename", "delete")


def add_subcommands(runs, add_home) -> None:
    """The subcommands of `studio runs` (argparse sub-parsers of the `runs` parser)."""
    sub = runs.add_subparsers(dest="runs_command", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    compare = sub.add_parser("compare", help=t("compare.cli_compare_help"))
    compare.add_argument("run_ids", nargs="+", metavar="RUN_ID", help=t("compare.cli_run_id"))
    compare.add_argument("--json", action="store_true", help=t("compare.cli_json_help"))
    export = sub.add_parser("export", help=t("compare.cli_export_help"))
    export.add_argument("run_id", metavar="RUN_ID", help=t("compare.cli_run_id"))
    export.add_argument("--out", metavar="FILE", default=None, help=t("compare.cli_out_help"))
    rename = sub.add_parser("rename", help=t("compare.cli_rename_help"))
    rename.add_argument("run_id", metavar="RUN_ID", help=t("compare.cli_run_id"))
    rename.add_argument("label", metavar="LABEL", help=t("compare.cli_label_help"))
    delete = sub.add_parser("delete", help=t("compare.cli_delete_help"))
    delete.add_argument("run_id", metavar="RUN_ID", help=t("compare.cli_run_id"))
    delete.add_argument("--yes", action="store_true", help=t("compare.cli_yes_help"))
    for parser in (compare, export, rename, delete):
        add_home(parser)


def run_subcommand(args, home) -> int:
    from studio.runs import RunStore

    store = RunStore(home)
    store.recover_crashed()  # a run left 'running' by a dead process is crashed, so it can be deleted
    return {"compare": cmd_compare, "export": cmd_export, "rename": cmd_rename,
            "delete": cmd_delete}[args.runs_command](args, store, home)


def _value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value) if value != "" else "''"


def comparison(store, run_ids: list[str], home) -> dict:
    """Everything `studio runs compare` shows, as plain data (what --json prints)."""
    from studio.compare import config_diff, display_names, final_losses, pick_runs, score_rows, vote_rows
    from studio.errors import UserError
    from studio.trackers import read_records

    runs = pick_runs(store, run_ids)
    if len(runs) < 2:
        raise UserError("compare.cli_needs_two")
    return {"runs": [run.id for run in runs], "names": display_names(runs),
            "final": {run.id: final_losses(run) for run in runs}, "config_diff": config_diff(runs),
            "scores": score_rows(runs), "votes": vote_rows(home, runs),
            "trackers": {run.id: read_records(run) for run in runs}}


def cmd_compare(args, store, home) -> int:
    data = comparison(store, args.run_ids, home)
    if args.json:
        print(json.dumps(data, indent=1, ensure_ascii=False))
        return 0
    names = [data["names"][rid] for rid in data["runs"]]
    rows = [[t("compare.col_setting")] + names]
    rows += [[row["setting"]] + [_value(v) for v in row["values"]] for row in data["config_diff"]]
    results = [[t("compare.row_final_loss")] + [_value(data["final"][rid]["loss"]) for rid in data["runs"]],
               [t("compare.row_final_eval_loss")] + [_value(data["final"][rid]["eval_loss"]) for rid in data["runs"]]]
    results += [[row["metric"]] + [_value(cell and cell["tuned"]) for cell in row["values"]] for row in data["scores"]]
    results.append([t("compare.row_votes")] + [t("compare.cell_votes", wins=v["wins"], votes=v["votes"])
                                               for v in data["votes"]])
    results.append([t("compare.row_win_rate")] + [_value(v["win_rate"]) for v in data["votes"]])
    print(t("compare.cli_settings") if data["config_diff"] else t("compare.cli_same_config"))
    if data["config_diff"]:
        _print_table(rows)
    print(t("compare.cli_results"))
    _print_table([[""] + names] + results)
    return 0


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def cmd_export(args, store, home) -> int:
    from studio.compare import export_recipe, get_run
    from studio.runs import _write_text_atomic

    run = get_run(store, args.run_id)
    if not args.out:
        text, _ = export_recipe(run, home=home)
        print(text, end="")
        return 0
    out = expand_user(args.out, strict=True).resolve()
    text, command = export_recipe(run, out, home)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(out, text)
    print(t("compare.cli_saved", path=str(out), command=command))
    return 0


def cmd_rename(args, store, home) -> int:
    from studio.compare import get_run, rename_run

    run = get_run(store, args.run_id)
    label = rename_run(run, args.label)
    print(t("compare.cli_renamed", run=run.id, label=label) if label else t("compare.cli_unlabelled", run=run.id))
    return 0


def cmd_delete(args, store, home) -> int:
    from studio.compare import delete_run, get_run
    from studio.errors import UserError

    run = get_run(store, args.run_id)
    if not args.yes:
        raise UserError("compare.cli_needs_yes", run=run.id)
    print(t("compare.cli_deleted", run=delete_run(store, run.id)))
    return 0
