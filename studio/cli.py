"""The `studio` command: the same backend as the browser UI, from a terminal.

    studio                                   # launch the UI (same as `studio ui`)
    studio --host 0.0.0.0 --port 8080 --auth me:secret --model-dir ~/models
    studio ui --host 127.0.0.1 --port 7860
    studio train recipes/demo.yaml epochs=2 learning_rate=1e-4
    studio train --resume RUN_ID [max_steps=200]   # go on from the last complete checkpoint
    studio runs [--json]
    studio runs compare|export|rename|delete …     # see studio/cli_runs.py

Every command takes `--home DIR` (or `$STUDIO_HOME`). User errors — bad flags included — print
one line `error: …` and exit 2; a training run that fails or is stopped exits 1. Launch flags
(`--allow-remote-code`, `--model-dir`, `--auth`, `--max-upload`) set what the network may do:
see studio/security.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from studio.errors import UserError
from studio.i18n import t

# `studio` with no command is `studio ui`, so the launch flags live on both parsers; their
# defaults are applied once, in `cmd_ui` (argparse would let a subparser's defaults overwrite
# values given before the command).
UI_DEFAULTS = {"host": "127.0.0.1", "port": 7860, "share": False, "allow_remote_code": False,
               "model_dirs": [], "max_upload": "200MB", "auth": None, "allowed_hosts": []}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one `error: …` line and exit 2, like every other user error."""

    def error(self, message: str):
        self.exit(2, t("cli.error", message=t("cli.bad_arguments", detail=message, prog=self.prog)) + "\n")


def _add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", default=argparse.SUPPRESS, help=t("cli.help_home"))


def _ui_options() -> argparse.ArgumentParser:
    options = OneLineParser(add_help=False)
    add = options.add_argument
    add("--host", default=argparse.SUPPRESS, help=t("cli.help_host"))
    add("--port", type=int, default=argparse.SUPPRESS, help=t("cli.help_port"))
    add("--share", action="store_true", default=argparse.SUPPRESS, help=t("cli.help_share"))
    add("--auth", metavar="USER:PASSWORD", default=argparse.SUPPRESS, help=t("cli.help_auth"))
    add("--model-dir", dest="model_dirs", action="append", metavar="DIR", default=argparse.SUPPRESS,
        help=t("cli.help_model_dir"))
    add("--allow-remote-code", action="store_true", default=argparse.SUPPRESS,
        help=t("cli.help_allow_remote_code"))
    add("--max-upload", metavar="SIZE", default=argparse.SUPPRESS, help=t("cli.help_max_upload"))
    add("--allowed-host", dest="allowed_hosts", action="append", metavar="NAME", default=argparse.SUPPRESS,
        help=t("cli.help_allowed_host"))
    return options


def build_parser() -> argparse.ArgumentParser:
    ui_options = _ui_options()
    parser = OneLineParser(prog="studio", description=t("cli.description"), parents=[ui_options])
    _add_home(parser)
    sub = parser.add_subparsers(dest="command")

    ui = sub.add_parser("ui", help=t("cli.help_ui"), parents=[ui_options])
    _add_home(ui)

    from studio.config import settings_help

    train = sub.add_parser("train", help=t("cli.help_train"), description=t("cli.train_example"),
                           epilog=settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_home(train)
    train.add_argument("items", nargs="*", metavar="RECIPE.yaml | key=value", help=t("cli.help_train_items"))
    train.add_argument("--json", action="store_true", help=t("cli.help_train_json"))
    train.add_argument("--resume", metavar="RUN_ID", default=None, help=t("resume.help_resume"))
    train.add_argument("--estimate", action="store_true", help=t("estimate.cli_help"))

    runs = sub.add_parser("runs", help=t("cli.help_runs"), description=t("compare.cli_help"))
    _add_home(runs)
    runs.add_argument("--json", action="store_true", help=t("cli.help_json"))
    from studio.cli_runs import add_subcommands

    add_subcommands(runs, _add_home)  # studio runs compare|export|rename|delete
    for module in _command_modules():
        module.add_commands(sub, _add_home)
    return parser


# Commands of the other tabs live beside their backends, each module with
# `add_commands(sub, add_home)` (argparse sub-parsers) and `COMMANDS = {name: fn(args, home) -> int}`.
COMMAND_MODULES = ("studio.cli_data", "studio.cli_eval", "studio.cli_chat", "studio.cli_sweep")


def _command_modules():
    import importlib

    found = []
    for name in COMMAND_MODULES:
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a module that exists but fails to import is a bug, not optional
                raise
    return found


def cmd_ui(args, home) -> int:
    from studio.demo_mode import demo_limits
    from studio.security import LaunchPolicy, check_listen

    for name, default in UI_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    policy = LaunchPolicy.for_launch(
        host=args.host, share=args.share, allow_remote_code=args.allow_remote_code,
        model_dirs=args.model_dirs, max_upload=args.max_upload, auth=args.auth,
        allowed_hosts=args.allowed_hosts, demo=demo_limits())  # $STUDIO_DEMO, on by default on a Space
    check_listen(policy.host, args.port)  # before the tabs are built: seconds sooner, one sentence
    from studio.jobs import stop_jobs_on_sigterm
    from studio.ui.app import launch

    stop_jobs_on_sigterm()  # `docker stop` / PID 1: the active run saves and ends 'stopped'
    launch(home=home, port=args.port, policy=policy)
    return 0


def _format_event(event: dict, total: int | None) -> str:
    if event.get("diagnostic"):  # a live diagnosis (studio.diagnostics): the sentence and the fix
        from studio.i18n import render

        return "! " + " ".join(p for p in (render(event.get("message")), render(event.get("fix"))) if p)
    step = f"step {event['step']}" + (f"/{total}" if total else "")
    parts = [step, f"epoch {event['epoch']:.2f}" if event.get("epoch") is not None else ""]
    for key in ("loss", "eval_loss"):
        if event.get(key) is not None:
            parts.append(f"{key} {event[key]:.4f}" if isinstance(event[key], float) else f"{key} {event[key]}")
    if event.get("learning_rate") is not None:
        parts.append(f"lr {event['learning_rate']:.2e}")
    if event.get("tokens_per_s"):
        parts.append(f"{event['tokens_per_s']:.0f} tok/s")
    return "  ".join(p for p in parts if p)


def _finish_report(run, status: dict, home) -> str:
    """The end of `studio train`: how long, the final losses, where the result is, what next."""
    from studio.i18n import t

    def loss(value):
        return f"{value:.4f}" if isinstance(value, (int, float)) else "-"

    lines = [t("train.cli_summary", seconds=f"{status.get('duration_s') or 0:.0f}",
               loss=loss(status.get("final_loss")), eval_loss=loss(status.get("final_eval_loss")))]
    if status.get("output"):
        lines.append(t("train.cli_result", output=status["output"]))
    lines.append(t("train.cli_next", home=str(home), run=run.id))
    return "\n".join(lines)


def cmd_train(args, home) -> int:
    import signal

    from studio import prefetch
    from studio.config import from_command_line
    from studio.jobs import SIGTERM_RECEIVED, JobManager, stop_jobs_on_sigterm
    from studio.runs import RunStore

    if getattr(args, "estimate", False):  # parameters, memory, steps, rough time; no training
        from studio.estimate import estimate

        print(estimate(from_command_line(args.items))["summary"].render())
        return 0
    jobs = JobManager(RunStore(home))
    run = _resume(args, jobs) if args.resume else None
    cfg = None if run else from_command_line(args.items)
    if _OWN_PROCESS:
        from studio.startup import pause_collector

        settings = cfg or run.config()
        _skip_bitsandbytes_unless_quantized(settings)
        prefetch.start(*prefetch.run_files(settings))  # the disk reads while Python imports
        pause_collector()  # until the libraries are imported (studio.startup)
    previous = stop_jobs_on_sigterm(interrupt_main=False)  # `docker stop` / PID 1: stop, save, end 'stopped', exit
    try:
        return _train_and_report(args, home, jobs, cfg, run)
    finally:
        if previous is not None and not SIGTERM_RECEIVED.is_set():
            signal.signal(signal.SIGTERM, previous)
        if _OWN_PROCESS and "trl" in sys.modules:  # the training stack was imported: the next start's list
            prefetch.record()


def _resume(args, jobs):
    """`studio train --resume RUN_ID [key=value …]`: print the plan, start it; the run or UserError."""
    from studio.resume import plan_lines

    try:
        run = jobs.store.get(args.resume)
    except KeyError:
        raise UserError("resume.unknown_run", run=args.resume) from None
    plan = jobs.resume(run, args.items)
    for line in plan_lines(plan):
        print(line.render(), flush=True)
    return run


def _train_and_report(args, home, jobs, cfg, run=None) -> int:
    from studio.i18n import Msg, render, t
    from studio.runs import FINAL_STATES

    resumed = run is not None
    run = run or jobs.start(cfg)
    summary = (jobs.data_report or {}).get("summary")
    if summary is not None and not args.json:
        print(render(summary), flush=True)
    print(t("train.cli_run", run=run.id, folder=str(run.path)), flush=True)
    # A resumed run prints only its new events (the kept ones were printed by the first run).
    offset, phase = (run.metrics_path.stat().st_size if resumed and run.metrics_path.exists() else 0), None
    try:
        while True:
            alive = jobs.busy()
            status = run.status()
            # Phases are news until the step lines begin; final states are reported once, below.
            if (status.get("phase") != phase and status.get("phase") not in FINAL_STATES
                    and not offset and not args.json):
                phase = status.get("phase")
                print(f"[{phase}] {run.message(status=status)}", flush=True)
            events, offset = run.read_metrics_from(offset)
            for event in events:
                print(json.dumps(event) if args.json else _format_event(event, status.get("total_steps")),
                      flush=True)
            if not alive:
                break
            jobs.wait(0.5)  # returns as soon as the run's thread ends
    except KeyboardInterrupt:
        print(t("train.cli_stopping"), flush=True)
        jobs.stop()
        jobs.wait()
    status = run.status()
    print(t("train.final_line", state=Msg("state." + status["state"]), message=run.message(status=status)),
          flush=True)
    if not args.json:
        print(_finish_report(run, status, home), flush=True)
    return 0 if status["state"] == "completed" else 1


def cmd_runs(args, home) -> int:
    from studio.compare import run_label
    from studio.i18n import t
    from studio.runs import RunStore

    if getattr(args, "runs_command", None):
        from studio.cli_runs import run_subcommand

        return run_subcommand(args, home)
    store = RunStore(home)
    store.recover_crashed()  # runs left 'running' by a dead process show as crashed here too
    from studio.trackers import read_records

    # a rename's label wins; "trackers": where each tracker's run lives (runs/<id>/trackers.json)
    rows = [{**run.summary(), "label": run_label(run), "trackers": read_records(run)} for run in store.all()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(t("runs.none_yet", home=str(home)))
        return 0
    print(f"{t('runs.col_run'):42} {t('runs.col_state'):10} {t('runs.col_method'):7} "
          f"{t('runs.col_loss'):>8} {t('runs.col_seconds'):>7}  {t('runs.col_data')}")
    for r in rows:
        loss = f"{r['final_loss']:.4f}" if isinstance(r["final_loss"], float) else "-"
        secs = f"{r['seconds']:.0f}" if r["seconds"] else "-"
        state = t("state." + r["state"]) if r["state"] else "-"
        label = f"  · {r['label']}" if r["label"] else ""
        print(f"{r['id']:42} {state:10} {r['method']:7} {loss:>8} {secs:>7}  {os.path.basename(r['data'])}{label}")
    return 0


# Set by `entry`: this process runs one command and ends (so process-wide choices are safe).
_OWN_PROCESS = False


def _skip_bitsandbytes_unless_quantized(cfg) -> None:
    """A process that trains one run without quantization never needs bitsandbytes, but peft imports
    it whenever it is installed, and its import compiles kernels with torch.compile (1.5 s of the
    wall time a user waits; benchmarks/train_speed.py). A None in sys.modules makes peft's and
    transformers' `find_spec` checks say it is absent. Only in the command's own process: the UI's
    process (and a test's) trains later runs that may be QLoRA."""
    if cfg.method.method != "qlora" and "peft" not in sys.modules:
        sys.modules.setdefault("bitsandbytes", None)


def entry() -> None:
    """The `studio` command as its own process (the console script, `python -m studio`).

    The cyclic garbage collector runs less often (see below; `studio train` also pauses it while
    the libraries import: studio.startup). After main() it ends the way Python would (threading's
    exit hooks, non-daemon threads joined, atexit handlers run, output flushed) but skips the
    interpreter's teardown of every loaded module, which takes about 1.2 s once torch,
    transformers and peft are loaded: time a user waits after the run has ended and everything is
    saved."""
    import gc

    global _OWN_PROCESS
    _OWN_PROCESS = True
    # CPython's cyclic collector runs every 700 new container objects; importing torch,
    # transformers, peft and trl creates millions, so it ran thousands of times for nothing:
    # a first threshold of 50 000 took about 1 s off the start (measured: 5.0 -> 4.1 s of imports).
    gc.set_threshold(50_000, 50, 50)
    _end_process(main())  # SystemExit (argparse's own errors) ends the process the usual way


def _end_process(code: int) -> None:
    """End this process as the interpreter would, minus the teardown of its modules."""
    import atexit
    import threading

    # What the interpreter's own exit calls first: threading's exit hooks (concurrent.futures
    # wakes its idle pool workers so they end; a plain join of every non-daemon thread waited on
    # those forever once `studio ui` was stopped), then a join of the non-daemon threads.
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    # Nothing about a run leaves this machine unless the user asks: no usage pings from the
    # Hugging Face libraries (TRL sends one when training starts) or from gradio.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    args = build_parser().parse_args(argv)
    command = args.command or "ui"
    try:
        from studio.demo_mode import persistent_home
        from studio.paths import studio_home

        # On a Space with persistent storage (and no $STUDIO_HOME) the runs live under /data.
        home = studio_home(getattr(args, "home", None) or persistent_home())
        commands = {"ui": cmd_ui, "train": cmd_train, "runs": cmd_runs}
        for module in _command_modules():
            commands.update(module.COMMANDS)
        return commands[command](args, home)
    except UserError as exc:
        print(t("cli.error", message=exc.render()), file=sys.stderr)
        return 2
    except OSError as exc:
        reason = exc.strerror or str(exc)
        detail = t("cli.os_error", reason=reason, path=exc.filename) if exc.filename else reason
        print(t("cli.error", message=detail), file=sys.stderr)
        return 2


if __name__ == "__main__":
    entry()
