"""The `studio` command: the same backend as the browser UI, from a terminal.

    studio                                   # launch the UI (same as `studio ui`)
    studio ui --host 127.0.0.1 --port 7860
    studio train recipes/demo.yaml epochs=2 learning_rate=1e-4
    studio runs [--json]

Every command takes `--home DIR` (or `$STUDIO_HOME`). User errors print one line and exit 2;
a training run that fails or is stopped exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from studio.errors import UserError


def _add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", default=argparse.SUPPRESS,
                        help="Folder for runs and uploads (default: $STUDIO_HOME or ~/.finetune-studio).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Finetune Studio: fine-tune language models.")
    _add_home(parser)
    sub = parser.add_subparsers(dest="command")

    ui = sub.add_parser("ui", help="Launch the browser studio (the default command).")
    _add_home(ui)
    ui.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default 127.0.0.1).")
    ui.add_argument("--port", type=int, default=7860, help="Port (default 7860).")
    ui.add_argument("--share", action="store_true", help="Create a public Gradio share link.")

    train = sub.add_parser("train", help="Train headless from a recipe and key=value overrides.",
                           description="Example: studio train recipes/demo.yaml epochs=2 method=qlora")
    _add_home(train)
    train.add_argument("items", nargs="*", metavar="RECIPE.yaml | key=value",
                       help="An optional recipe file, then overrides such as model=..., data=..., "
                            "method=lora, epochs=3, learning_rate=2e-4, batch_size=8, max_length=256, "
                            "max_steps=100.")
    train.add_argument("--json", action="store_true", help="Print each metrics event as a JSON line.")

    runs = sub.add_parser("runs", help="List runs with their state, method, data and final loss.")
    _add_home(runs)
    runs.add_argument("--json", action="store_true", help="Print JSON for scripts.")
    return parser


def cmd_ui(args, home) -> int:
    from studio.ui.app import launch

    launch(home=home, host=args.host, port=args.port, share=args.share)
    return 0


def _format_event(event: dict, total: int | None) -> str:
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


def cmd_train(args, home) -> int:
    from studio.config import from_command_line
    from studio.jobs import JobManager
    from studio.runs import RunStore

    cfg = from_command_line(args.items)
    jobs = JobManager(RunStore(home))
    run = jobs.start(cfg)
    print(f"run {run.id}  ({run.path})", flush=True)
    offset, phase = 0, None
    try:
        while True:
            alive = jobs.busy()
            status = run.status()
            if status.get("phase") != phase and not args.json:
                phase = status.get("phase")
                print(f"[{phase}] {status.get('message', '')}", flush=True)
            events, offset = run.read_metrics_from(offset)
            for event in events:
                print(json.dumps(event) if args.json else _format_event(event, status.get("total_steps")),
                      flush=True)
            if not alive:
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("Stopping after the current step (the result is saved)…", flush=True)
        jobs.stop()
        jobs.wait()
    status = run.status()
    print(f"{status['state']}: {status.get('message', '')}", flush=True)
    return 0 if status["state"] == "completed" else 1


def cmd_runs(args, home) -> int:
    from studio.runs import RunStore

    rows = RunStore(home).list()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"No runs yet in {home}.")
        return 0
    print(f"{'run':42} {'state':10} {'method':7} {'loss':>8} {'secs':>7}  data")
    for r in rows:
        loss = f"{r['final_loss']:.4f}" if isinstance(r["final_loss"], float) else "-"
        secs = f"{r['seconds']:.0f}" if r["seconds"] else "-"
        print(f"{r['id']:42} {r['state']:10} {r['method']:7} {loss:>8} {secs:>7}  {os.path.basename(r['data'])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "ui"
    if command == "ui" and args.command is None:
        args.host, args.port, args.share = "127.0.0.1", 7860, False
    try:
        from studio.paths import studio_home

        home = studio_home(getattr(args, "home", None))
        return {"ui": cmd_ui, "train": cmd_train, "runs": cmd_runs}[command](args, home)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
