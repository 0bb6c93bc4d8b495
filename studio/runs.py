"""The run store: one folder per run under `<home>/runs/`, the source of truth for UI and CLI.

    store = RunStore(home)
    run = store.create(cfg)                   # runs/<id>/config.yaml + status.json (queued)
    run.update_status(state="running", phase="training")
    run.append_metric({"step": 1, "loss": 2.3, ...})
    run.read_metrics(since_step=0)            # tolerant of a torn last line
    store.list()                              # summaries for the Runs table
    store.recover_crashed()                   # runs left 'running' by a dead process -> crashed

Layout (DESIGN.md §3): config.yaml, status.json, metrics.jsonl, adapter/ or model/,
checkpoints/, eval/, data/ (the exact splits used), logs.txt.

Ownership: status.json records the owning process as pid + host + the process's start time
(/proc/<pid>/stat) + the boot id, so a run is judged dead even when a new process got the same
PID (containers restart as PID 1). A status that cannot be written (disk full) is kept in this
process's memory and `Run.status()` returns it, so the page and the API still see the final state.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from studio.config import StudioConfig, load_recipe, save_recipe
from studio.i18n import Msg, render, t

ACTIVE_STATES = ("queued", "running", "stopping")
LABEL_FILE = "label.txt"  # a run's label (studio.compare.rename_run): a file of its own, see Run.label
MAX_LABEL = 80
FINAL_STATES = ("stopped", "completed", "failed", "crashed")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:32]


def _json_number(value):
    """JSON has no NaN/inf: write them as strings so readers see what happened."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _write_text_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a half-written one (a full disk included)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_json_atomic(path: Path, data: dict) -> None:
    _write_text_atomic(path, json.dumps(data, indent=1))


# Statuses that could not be written (disk full), by run folder: newer than the file on disk.
_unsaved: dict[str, dict] = {}
_status_lock = threading.RLock()


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _process_started(pid: int) -> int | None:
    """Start time of process `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text.rsplit(")", 1)[1].split()[19])  # fields after "(comm)" start at field 3


def process_identity(pid: int | None = None) -> dict:
    """What status.json records about the owning process; a reused PID does not match it."""
    pid = pid or os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "pid_started": _process_started(pid),
            "boot_id": _boot_id()}


def owner_alive(status: dict) -> bool:
    """Is the process that wrote this status still the one running under its PID?"""
    pid = status.get("pid")
    if not pid or status.get("host") != socket.gethostname():
        return False
    if status.get("boot_id") and status["boot_id"] != _boot_id():
        return False
    if status.get("pid_started") is not None:
        return _process_started(pid) == status["pid_started"]
    try:  # a status without a start time (no /proc here, or an older studio): ask the kernel
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_name(cfg: StudioConfig) -> str:
    """What a run is called: its data and method ('demo-en-lora'); cfg.name stays a label."""
    data = _slug(Path(cfg.data.path.rstrip("/")).stem) or "data"
    return f"{data}-{_slug(cfg.method.method) or 'run'}"


def one_line(text) -> str:
    """Text as one line of printable characters (what a label may be wherever it is shown)."""
    return re.sub(r"\s+", " ", "".join(ch if ch.isprintable() else " " for ch in str(text or ""))).strip()


def status_message(status: dict, lang: str | None = None) -> str:
    """status.json's message rendered in `lang` (plain text for messages saved as text)."""
    return render(status.get("message_msg") or status.get("message", ""), lang)


@dataclass
class Run:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def config(self) -> StudioConfig:
        return load_recipe(self.path / "config.yaml")

    def label(self, cfg: StudioConfig | None = None) -> str:
        """What the run is labelled: runs/<id>/label.txt (a rename), else the config's name; ''
        with neither. Always one line of plain text (a label comes from a client, or was edited
        by hand): every list, table and legend shows it as text, never as markup."""
        try:
            label = one_line((self.path / LABEL_FILE).read_text(encoding="utf-8"))[:MAX_LABEL]
        except (OSError, UnicodeDecodeError):
            label = ""
        if label:
            return label
        try:
            return one_line((cfg or self.config()).name)[:MAX_LABEL]
        except Exception:  # an unreadable config: the id still names the run
            return ""

    def status(self) -> dict:
        if str(self.path) in _unsaved:
            return dict(_unsaved[str(self.path)])
        try:
            return json.loads((self.path / "status.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            unreadable = Msg("runs.status_unreadable")
            return {"state": "unknown", "message": str(unreadable), "message_msg": unreadable.to_dict()}

    def update_status(self, **changes) -> dict:
        """Merge changes into status.json. A `Msg` value is stored twice: as English text under
        its key (for people reading the file) and as code + parameters under `<key>_msg`, which
        readers render in their own language (`message(lang)`).

        When the file cannot be written (disk full) the new status is kept in memory, where
        `status()` finds it, and the OSError is raised for the writer to handle."""
        with _status_lock:  # read-merge-write: the job thread and a Stop click must not interleave
            known = str(self.path) in _unsaved or (self.path / "status.json").exists()
            status = self.status() if known else {}
            if status.get("state") in FINAL_STATES and changes.get("state") in ACTIVE_STATES:
                changes = {k: v for k, v in changes.items() if k not in ("state", "message")}  # final is final
            return self._write_status(status, changes)

    def reopen(self, drop: tuple = (), **changes) -> dict:
        """Put a finished run back into an active state on purpose (a resume): `update_status`
        keeps final states final so that a late write cannot revive a run; this does not.
        `drop` names status keys of the ended run that no longer hold."""
        with _status_lock:
            status = self.status()
            for key in drop:
                status.pop(key, None)
                status.pop(f"{key}_msg", None)
            return self._write_status(status, changes)

    def _write_status(self, status: dict, changes: dict) -> dict:
        for key, value in changes.items():
            if isinstance(value, Msg):
                status[f"{key}_msg"] = value.to_dict()
                value = str(value)
            elif f"{key}_msg" in status:
                del status[f"{key}_msg"]
            status[key] = _json_number(value)
        status["updated_at"] = time.time()
        try:
            _write_json_atomic(self.path / "status.json", status)
        except OSError:
            _unsaved[str(self.path)] = status
            raise
        _unsaved.pop(str(self.path), None)
        return status

    STOP_FILE = "stop_requested"  # Stop for a run trained by other processes (studio.distributed)

    def request_stop(self) -> None:
        (self.path / self.STOP_FILE).touch()

    def stop_requested(self) -> bool:
        return (self.path / self.STOP_FILE).exists()

    def clear_stop_request(self) -> None:
        (self.path / self.STOP_FILE).unlink(missing_ok=True)

    def message(self, lang: str | None = None, status: dict | None = None) -> str:
        """The status message in the reader's language."""
        return status_message(self.status() if status is None else status, lang)

    def append_metric(self, event: dict) -> None:
        line = json.dumps({k: _json_number(v) for k, v in event.items()})
        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def read_metrics(self, offset: int = 0) -> list[dict]:
        return self.read_metrics_from(offset)[0]

    def read_metrics_from(self, offset: int = 0) -> tuple[list[dict], int]:
        """Events appended after byte `offset`, and the offset to ask from next time.

        Only whole lines are consumed, so a line being written right now (a torn last line) is
        read on the next call. Pollers keep the offset, which keeps each poll cheap.
        """
        try:
            with open(self.metrics_path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except OSError:
            return [], offset
        end = chunk.rfind(b"\n") + 1
        events = []
        for line in chunk[:end].splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events, offset + end

    def log(self, message: str) -> None:
        """Append a line to logs.txt; a log that cannot be written (disk full) never stops a job."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            with open(self.path / "logs.txt", "a", encoding="utf-8") as fh:
                fh.write(f"[{stamp}] {message}\n")
        except OSError:
            pass

    def output_dir(self) -> Path | None:
        for name in ("adapter", "model"):
            if (self.path / name).is_dir():
                return self.path / name
        return None

    def progress(self, now: float | None = None) -> dict:
        """Step, share done, elapsed and ETA (seconds) from status.json, for progress bars.

        The ETA is the training time per step so far times the steps left, plus the measured
        time per evaluation times the evaluations left (status: eval_seconds, evals_done,
        evals_total), so runs that evaluate often are not promised too early."""
        status = self.status()
        now = now or time.time()
        step, total = status.get("step") or 0, status.get("total_steps") or 0
        begun = status.get("training_started_at")
        end = status.get("ended_at") if status.get("state") in FINAL_STATES else None
        elapsed = ((end or now) - begun) if begun else 0.0
        eta = None
        if step and total and not end:
            eval_seconds, evals_done = status.get("eval_seconds") or 0.0, status.get("evals_done") or 0
            evals_left = max(0, (status.get("evals_total") or 0) - evals_done)
            per_eval = eval_seconds / evals_done if evals_done else 0.0
            eta = max(0.0, elapsed - eval_seconds) / step * (total - step) + per_eval * evals_left
        return {"state": status.get("state", "unknown"), "phase": status.get("phase", ""),
                "message": status.get("message", ""), "message_msg": status.get("message_msg"),
                "step": step, "total_steps": total,
                "epoch": status.get("epoch"), "fraction": min(1.0, step / total) if total else 0.0,
                "elapsed_s": elapsed, "eta_s": eta, "output": status.get("output")}

    def summary(self) -> dict:
        """One row for the Runs table and `studio runs --json`."""
        status = self.status()
        try:
            cfg = self.config()
            method, data, model = cfg.method.method, cfg.data.path, cfg.model.path
            name = run_name(cfg)
        except Exception:
            cfg, method, data, model, name = None, "", "", "", ""
        label = self.label(cfg)  # a rename (label.txt) wins over the config's name
        final_loss = status.get("final_loss")
        if final_loss is None:  # finished runs record it in status.json; only live ones read metrics
            losses = [e["loss"] for e in self.read_metrics() if isinstance(e.get("loss"), (int, float))]
            final_loss = losses[-1] if losses else None
        started, ended = status.get("started_at"), status.get("ended_at") or status.get("updated_at")
        return {
            "id": self.id,
            "name": status.get("name") or name,
            "label": label,
            "state": status.get("state", "unknown"),
            "method": method,
            "model": model,
            "data": data,
            "step": status.get("step", 0),
            "total_steps": status.get("total_steps"),
            "final_loss": final_loss,
            "seconds": round(ended - started, 1) if started and ended else None,
            "created_at": status.get("created_at"),
            "message": status.get("message", ""),
            "output": str(self.output_dir() or ""),
        }


class RunStore:
    def __init__(self, home: Path):
        self.root = Path(home) / "runs"
        self.root.mkdir(parents=True, exist_ok=True)

    def create(self, cfg: StudioConfig) -> Run:
        """A new run folder with config.yaml and status.json, or nothing at all (disk full)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = run_name(cfg)
        run = Run(self.root / f"{stamp}-{name}-{secrets.token_hex(2)}")
        run.path.mkdir(parents=True)
        try:
            save_recipe(cfg, run.path / ".config.yaml.tmp")
            os.replace(run.path / ".config.yaml.tmp", run.path / "config.yaml")
            run.update_status(state="queued", phase="queued", message=Msg("runs.queued"), name=name,
                              created_at=time.time(), step=0, **process_identity())
        except BaseException:
            _unsaved.pop(str(run.path), None)
            shutil.rmtree(run.path, ignore_errors=True)
            raise
        return run

    def get(self, run_id: str) -> Run:
        # a run id is one folder name: no separators, and short enough for the file system
        if not isinstance(run_id, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", run_id):
            raise KeyError(run_id)
        run = Run(self.root / run_id)
        if not (run.path / "status.json").exists():
            raise KeyError(run_id)
        return run

    def all(self) -> list[Run]:
        """Runs, newest first."""
        runs = [Run(p) for p in self.root.iterdir() if (p / "status.json").exists()]
        return sorted(runs, key=lambda r: r.status().get("created_at") or 0, reverse=True)

    def latest(self) -> Run | None:
        runs = self.all()
        return runs[0] if runs else None

    def list(self) -> list[dict]:
        return [run.summary() for run in self.all()]

    def signature(self) -> tuple:
        """Changes whenever a run is added or its status changes: lets pollers skip redraws."""
        return tuple(sorted((p.name, (p / "status.json").stat().st_mtime_ns,
                             _unsaved.get(str(p), {}).get("updated_at"))
                            for p in self.root.iterdir() if (p / "status.json").exists()))

    def recover_crashed(self) -> list[str]:
        """Mark runs whose owning process is gone as crashed (the UI's start, `studio runs`).

        A home that cannot be written (disk full) gets a warning on stderr, not a refusal: the
        crashed state is then kept in memory for this process."""
        crashed, unwritable = [], False
        for run in self.all():
            status = run.status()
            if status.get("state") in ACTIVE_STATES and not owner_alive(status):
                try:
                    run.update_status(state="crashed", phase="crashed", ended_at=time.time(),
                                      message=Msg("runs.crashed"))
                except OSError:
                    unwritable = True
                crashed.append(run.id)
        if unwritable:
            print(t("runs.home_unwritable", home=str(self.root)), file=sys.stderr, flush=True)
        return crashed
