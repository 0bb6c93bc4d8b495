"""A studio home opened for use: the run store, the one job manager, and uploaded files.

    ws = Workspace(home)      # marks runs left 'running' by a dead process as crashed
    run = ws.start(["epochs=1", "method=lora"])      # same path as the Start button
    ws.jobs.stop()

The UI and the HTTP API share one Workspace per process, so a second start is refused whether
it comes from the button, a second tab or a script.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from studio.config import StudioConfig, apply_overrides
from studio.errors import UserError
from studio.jobs import JobManager
from studio.runs import Run, RunStore

UPLOAD_TYPES = (".json", ".jsonl", ".csv", ".parquet")


class Workspace:
    def __init__(self, home: Path):
        self.home = Path(home)
        self.store = RunStore(self.home)
        self.jobs = JobManager(self.store)
        self.uploads = self.home / "uploads"
        self.crashed = self.store.recover_crashed()

    def start(self, request: StudioConfig | list[str] | None = None) -> Run:
        """Start a run for a network caller (the browser form or the HTTP API).

        `request` is a config (the form) or key=value strings on top of the default config (the
        API). This is the one door from the network to the job manager: launch-time policy
        (remote code, allowed model folders, uploads) is enforced here; the CLI, run by the
        machine's own user, calls the job manager directly.
        """
        cfg = request if isinstance(request, StudioConfig) else apply_overrides(StudioConfig(), list(request or []))
        return self.jobs.start(cfg)

    def has_run(self, run_id: str) -> bool:
        try:
            self.store.get(run_id)
            return True
        except KeyError:
            return False

    def uploaded_datasets(self) -> list[str]:
        if not self.uploads.is_dir():
            return []
        return sorted(str(p) for p in self.uploads.iterdir() if p.suffix.lower() in UPLOAD_TYPES)

    def save_upload(self, temp_path: str) -> str:
        """Copy a browser upload into <home>/uploads/ under a safe name; returns the new path."""
        source = Path(temp_path)
        if source.suffix.lower() not in UPLOAD_TYPES:
            raise UserError(f"{source.name}: upload a .json, .jsonl, .csv or .parquet file.")
        self.uploads.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", source.name).lstrip(".") or "data.json"
        target = self.uploads / name
        shutil.copyfile(source, target)
        return str(target)
