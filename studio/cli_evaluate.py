"""`studio eval RUN`: score a run's fine-tuned model against its base from a terminal.

    studio eval RUN [--data FILE | library:<id> | demo-zh] [--general demo-zh] [--batch-size N]
                    [--max-new-tokens N] [--max-rows N] [--sample --temperature T --top-p P --seed S]
                    [--stem] [--json]

Same backend as the Evaluate tab (studio.evaluate): the run's held-out test split by default,
results saved in runs/<id>/eval/<key>/ and reused when asked again. `--json` prints the test
set's scores.json (+ "general" with --general). Ctrl-C stops the evaluation cleanly. A run that
cannot be evaluated (failed, no adapter, base model gone, empty test set) is one `error: …` line
and exit 2; a stopped or failed evaluation exits 1. Registered through studio/cli_eval.py.
"""

from __future__ import annotations

import json

from studio.i18n import render, t


def add_eval_command(sub, add_home) -> None:
    parser = sub.add_parser("eval", help=t("evaluate.cli_help"))
    add_home(parser)
    add = parser.add_argument
    add("run", metavar="RUN", help=t("evaluate.cli_run"))
    add("--data", default=None, metavar="FILE", help=t("evaluate.cli_data"))
    add("--general", default=None, metavar="FILE", help=t("evaluate.cli_general"))
    add("--batch-size", type=int, default=16, metavar="N", help=t("evaluate.cli_batch_size"))
    add("--max-new-tokens", type=int, default=64, metavar="N", help=t("evaluate.cli_max_new_tokens"))
    add("--max-rows", type=int, default=0, metavar="N", help=t("evaluate.cli_max_rows"))
    add("--sample", action="store_true", help=t("evaluate.cli_sample"))
    add("--temperature", type=float, default=0.7, help=t("evaluate.ui.temperature"))
    add("--top-p", type=float, default=0.95, help=t("evaluate.ui.top_p"))
    add("--seed", type=int, default=42, help=t("evaluate.ui.seed"))
    add("--stem", action="store_true", help=t("evaluate.cli_stem"))
    add("--json", action="store_true", help=t("evaluate.cli_json"))


def cmd_eval(args, home) -> int:
    from studio import evaluate as ev
    from studio.generation import GenerationSettings
    from studio.jobs import JobManager
    from studio.runs import RunStore

    settings = GenerationSettings.from_dict({
        "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "do_sample": args.sample,
        "temperature": args.temperature, "top_p": args.top_p, "seed": args.seed})
    store = RunStore(home)
    store.recover_crashed()
    jobs = JobManager(store)
    status, result = ev.evaluate_now(jobs, args.run, args.data, settings, args.general, args.stem, args.max_rows)
    if status["state"] != "completed" or not result.get("test"):
        print(t("cli.error", message=render(status.get("message") or t("evaluate.stopped"))))
        return 1
    test = result["test"]
    if args.json:
        out = dict(test)
        if result.get("general"):
            out["general"] = result["general"]
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    for scores in (test, result.get("general")):
        if not scores:
            continue
        print(t("evaluate.cli_header", run=scores["run"], data=scores.get("data_label") or scores["data"],
                rows=scores["rows"], tokenization=ev.tokenization_msg(scores.get("tokenization"))))
        for row in ev.comparison_rows(scores):
            change = "n/a" if row["change"] is None else f"{row['change']:+.4f}"
            pct = "n/a" if row["pct"] is None else f"{row['pct']:+.1f}%"
            print(t("evaluate.cli_row", metric=row["metric"], base=ev._fmt(row["base"], 4),
                    tuned=ev._fmt(row["tuned"], 4), change=change, pct=pct))
    verdict = ev.forgetting_verdict(result.get("general"))
    if verdict is not None:
        print(render(verdict))
    print(t("evaluate.cli_saved", folder=result["test_folder"]))
    return 0

