"""Experiment trackers: a run may also report its losses to TensorBoard, trackio, W&B or MLflow.

    installed_trackers()                 # ['tensorboard'] — the ones whose package is installed
    tracker_choices()                    # ['none', 'tensorboard'] — what the Train form offers
    report_to_problem("wandb")           # Msg "… not installed: pip install wandb …" or None
    training_kwargs(cfg, run)            # report_to / run_name / project for TrainingArguments
    with reporting(cfg, run): ...        # around building the trainer and training: the trackers'
                                         # folders and settings for this run, and runs/<id>/trackers.json
    read_records(run)                    # [{"name": "tensorboard", "location": "/…/tracker/tensorboard"}]

The setting `train.report_to` is "none" or a comma list of tracker names. The studio's own plots
(metrics.jsonl) never depend on it; a tracker is an extra copy for people who already use one.
transformers' own integration callbacks do the reporting (on the main process only); this module
only points them at the run: by default everything stays on this machine, in the run folder —
TensorBoard event files in runs/<id>/tracker/tensorboard, W&B offline in runs/<id>/tracker/wandb
(online when WANDB_API_KEY or WANDB_MODE is set), MLflow's file store in runs/<id>/tracker/mlflow
(unless MLFLOW_TRACKING_URI is set). trackio reads its folder once per process (TRACKIO_DIR, at its
import), so its local database is <home>/trackio, shared by the runs of that studio home; the
tracker run is named after the run id everywhere. runs/<id>/trackers.json records where each
tracker's run lives.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from studio.i18n import Msg

if TYPE_CHECKING:
    from studio.config import StudioConfig
    from studio.runs import Run

# tracker name -> (modules that make it usable, the package to install)
TRACKERS = {
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "trackio": (("trackio",), "trackio"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
}
PROJECT = "finetune-studio"  # the W&B project / MLflow experiment / trackio project, unless the environment names one
RECORD = "trackers.json"


def is_installed(name: str) -> bool:
    for module in TRACKERS[name][0]:
        try:
            if importlib.util.find_spec(module) is not None:
                return True
        except (ImportError, ValueError):  # a broken install, or a module without a spec
            continue
    return False


def installed_trackers() -> list[str]:
    return [name for name in TRACKERS if is_installed(name)]


def tracker_choices() -> list[str]:
    """The values the Train form offers: none, then every installed tracker."""
    return ["none"] + installed_trackers()


def parse_report_to(value: str) -> list[str]:
    """'TensorBoard, mlflow' -> ['tensorboard', 'mlflow']; '' and 'none' -> []."""
    names = [part.strip().lower() for part in str(value or "").split(",")]
    return list(dict.fromkeys(n for n in names if n and n != "none"))


def report_to_problem(value: str) -> Msg | None:
    """The sentence for a tracker that is unknown or not installed, else None."""
    for name in parse_report_to(value):
        if name not in TRACKERS:
            return Msg("trackers.unknown", name=name, options=", ".join(["none", *TRACKERS]))
        if not is_installed(name):
            return Msg("trackers.not_installed", name=name, package=TRACKERS[name][1])
    return None


def training_kwargs(cfg: StudioConfig, run: Run) -> dict:
    """The TrainingArguments for the chosen trackers (report_to "none" when there are none)."""
    names = parse_report_to(cfg.train.report_to)
    kwargs = {"report_to": names or "none", "run_name": run.id}
    if "trackio" in names:
        # local only: no Space is created, nothing is synced to the Hub at the end
        kwargs.update(project=os.environ.get("TRACKIO_PROJECT") or PROJECT, trackio_static_space_id=False)
    return kwargs


def tracker_dir(run: Run, name: str) -> Path:
    return run.path / "tracker" / name


def _public_url(url: str) -> str:
    """A tracking URL without user:password or query (it may carry a token): safe to record."""
    parts = urlsplit(url)
    if not parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _trackio_dir(run: Run) -> Path:
    if "trackio.utils" in sys.modules:  # fixed at trackio's import: earlier runs of this process chose it
        return Path(sys.modules["trackio.utils"].TRACKIO_DIR)
    return Path(os.environ.get("TRACKIO_DIR") or run.path.parent.parent / "trackio")


def plan(names: list[str], run: Run) -> tuple[dict[str, str], list[dict]]:
    """(environment variables to set for this run, the records for trackers.json)."""
    env: dict[str, str] = {}
    records: list[dict] = []
    for name in names:
        if name == "tensorboard":
            folder = tracker_dir(run, name)
            env["TENSORBOARD_LOGGING_DIR"] = str(folder)
            records.append({"name": name, "location": str(folder)})
        elif name == "wandb":
            folder = tracker_dir(run, name)
            project = os.environ.get("WANDB_PROJECT") or PROJECT
            env.update(WANDB_DIR=str(folder), WANDB_PROJECT=project)
            online = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
            env["WANDB_MODE"] = online
            location = str(folder) if online in ("offline", "disabled") else f"wandb project {project}"
            records.append({"name": name, "location": location, "mode": online, "project": project})
        elif name == "mlflow":
            uri = os.environ.get("MLFLOW_TRACKING_URI") or tracker_dir(run, name).resolve().as_uri()
            experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or PROJECT
            env.update(MLFLOW_TRACKING_URI=uri, MLFLOW_EXPERIMENT_NAME=experiment)
            records.append({"name": name, "location": _public_url(uri), "experiment": experiment})
        elif name == "trackio":
            space = os.environ.get("TRACKIO_SPACE_ID")
            server = os.environ.get("TRACKIO_SERVER_URL")
            folder = _trackio_dir(run)
            if not space and not server and "TRACKIO_DIR" not in os.environ:
                env["TRACKIO_DIR"] = str(folder)
            location = (f"https://huggingface.co/spaces/{space}" if space else _public_url(server) if server
                        else str(folder))
            records.append({"name": name, "location": location,
                            "project": os.environ.get("TRACKIO_PROJECT") or PROJECT})
    for record in records:
        record["run"] = run.id
    return env, records


@contextlib.contextmanager
def reporting(cfg: StudioConfig, run: Run):
    """Point the chosen trackers at this run for the duration of the block, and record where.

    transformers' callbacks read their settings from the environment (TensorBoard when the
    trainer is built, the others when training begins), so the block spans both; the previous
    values come back afterwards, so one run's folders never leak into the next run of the process.
    """
    names = parse_report_to(cfg.train.report_to)
    if not names:
        yield []
        return
    env, records = plan(names, run)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    if "mlflow" in names:
        import mlflow

        # a tracking URI set by an earlier run of this process would win over the environment
        mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    write_records(run, records)
    for record in records:
        run.log(f"tracker: {record['name']} -> {record['location']}")
    try:
        yield records
    finally:
        if "wandb" in names:
            _finish_wandb(run, records)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _finish_wandb(run: Run, records: list[dict]) -> None:
    """Close the W&B run (the callback leaves it open: the next run would log into it) and record
    its page when it was online."""
    wandb = sys.modules.get("wandb")
    active = getattr(wandb, "run", None) if wandb else None
    if active is None:
        return
    url = getattr(active, "url", None)
    if url:
        for record in records:
            if record["name"] == "wandb":
                record["location"] = _public_url(url)
        write_records(run, records)
    wandb.finish()


def write_records(run: Run, records: list[dict]) -> None:
    (run.path / RECORD).write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")


def read_records(run: Run) -> list[dict]:
    """What trackers.json says ([] when the run reported to none, or the file is unreadable)."""
    try:
        data = json.loads((run.path / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [r for r in data if isinstance(r, dict) and "name" in r] if isinstance(data, list) else []
