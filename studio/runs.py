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
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from studio.config import StudioConfig, load_recipe, save_recipe
from studio.i18n import Msg, render

ACTIVE_STATES = ("queued", "running", "stopping")
FINAL_STATES = ("stopped", "completed", "failed", "crashed")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:32]


def _json_number(value):
    """JSON has no NaN/inf: write them as strings so readers see what happened."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _pid_alive(pid: int | None, host: str | None) -> bool:
    if not pid or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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

    def status(self) -> dict:
        try:
            return json.loads((self.path / "status.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {"state": "unknown", "message": "status.json is missing or unreadable"}

    def update_status(self, **changes) -> dict:
        """Merge changes into status.json. A `Msg` value is stored twice: as English text under
        its key (for people reading the file) and as code + parameters under `<key>_msg`, which
        readers render in their own language (`message(lang)`)."""
        status = self.status() if (self.path / "status.json").exists() else {}
        for key, value in changes.items():
            if isinstance(value, Msg):
                status[f"{key}_msg"] = value.to_dict()
                value = str(value)
            elif f"{key}_msg" in status:
                del status[f"{key}_msg"]
            status[key] = _json_number(value)
        status["updated_at"] = time.time()
        _write_json_atomic(self.path / "status.json", status)
        return status

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
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.path / "logs.txt", "a", encoding="utf-8") as fh:
            fh.write(f"[{stamp}] {message}\n")

    def output_dir(self) -> Path | None:
        for name in ("adapter", "model"):
            if (self.path / name).is_dir():
                return self.path / name
        return None

    def progress(self, now: float | None = None) -> dict:
        """Step, share done, elapsed and ETA (seconds) from status.json, for progress bars."""
        status = self.status()
        now = now or time.time()
        step, total = status.get("step") or 0, status.get("total_steps") or 0
        begun = status.get("training_started_at")
        end = status.get("ended_at") if status.get("state") in FINAL_STATES else None
        elapsed = ((end or now) - begun) if begun else 0.0
        eta = elapsed / step * (total - step) if step and total and not end else None
        return {"state": status.get("state", "unknown"), "phase": status.get("phase", ""),
                "message": status.get("message", ""), "step": step, "total_steps": total,
                "epoch": status.get("epoch"), "fraction": min(1.0, step / total) if total else 0.0,
                "elapsed_s": elapsed, "eta_s": eta, "output": status.get("output")}

    def summary(self) -> dict:
        """One row for the Runs table and `studio runs --json`."""
        status = self.status()
        try:
            cfg = self.config()
            method, data, model = cfg.method.method, cfg.data.path, cfg.model.path
            name = cfg.name
        except Exception:
            method = data = model = name = ""
        final_loss = status.get("final_loss")
        if final_loss is None:  # finished runs record it in status.json; only live ones read metrics
            losses = [e["loss"] for e in self.read_metrics() if isinstance(e.get("loss"), (int, float))]
            final_loss = losses[-1] if losses else None
        started, ended = status.get("started_at"), status.get("ended_at") or status.get("updated_at")
        return {
            "id": self.id,
            "name": name,
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
        stamp = time.strftime("%Y%m%d-%H%M%S")
        label = _slug(cfg.name) or cfg.method.method
        run = Run(self.root / f"{stamp}-{label}-{secrets.token_hex(2)}")
        run.path.mkdir(parents=True)
        save_recipe(cfg, run.path / "config.yaml")
        run.update_status(state="queued", phase="queued", message="Waiting to start",
                          created_at=time.time(), pid=os.getpid(), host=socket.gethostname(), step=0)
        return run

    def get(self, run_id: str) -> Run:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", run_id or ""):
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
        return tuple(sorted((p.name, (p / "status.json").stat().st_mtime_ns)
                            for p in self.root.iterdir() if (p / "status.json").exists()))

    def recover_crashed(self) -> list[str]:
        """Mark runs whose owning process is gone as crashed (called when the app starts)."""
        crashed = []
        for run in self.all():
            status = run.status()
            if status.get("state") in ACTIVE_STATES and not _pid_alive(status.get("pid"), status.get("host")):
                run.update_status(state="crashed", phase="crashed", ended_at=time.time(),
                                  message="The studio stopped while this run was active; "
                                          "its checkpoints (if any) are kept.")
                crashed.append(run.id)
        return crashed
