"""A studio home opened for use: the run store, the one job manager, uploads and the launch policy.

    ws = Workspace(home)                  # marks runs left 'running' by a dead process as crashed
    ws = Workspace(home, LaunchPolicy.for_launch(host="0.0.0.0", model_dirs=["/models"]))
    run = ws.start(["epochs=1", "method=lora"])      # same path as the Start button
    path = ws.resolve_user_path("demo-en", "data")  # a path from the network, checked
    ws.jobs.stop()

In demo mode (`policy.demo`, studio/demo_mode.py) `store` and `jobs` show each visitor only their
own runs, uploads go to a folder per visitor, and `admit` enforces the model-size and step caps.

The UI and the HTTP API share one Workspace per process, so a second start is refused whether
it comes from the button, a second tab or a script. Everything the network sends that names a
file or a folder goes through `resolve_user_path`, and every start through `start`: together they
are the studio's boundary (see studio/security.py for why each rule exists).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from studio.config import StudioConfig, apply_overrides
from studio.errors import UserError
from studio.jobs import JobManager
from studio.paths import ASSETS, DEMO_DATA, is_library_ref, resolve_data_path, resolve_model_path, use_home_caches
from studio.runs import Run, RunStore
from studio.security import LaunchPolicy, is_within, upload_folders

UPLOAD_TYPES = (".json", ".jsonl", ".csv", ".tsv", ".parquet", ".txt")
# A Hub id: 'name' or 'owner/name', never a path (no leading '.', '/' or '~', no '..').
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
PATH_KINDS = ("data", "model")
OFF_IN_DEMO = {"export": "demo.export_off"}  # what demo mode turns off -> the sentence that says so


class Workspace:
    def __init__(self, home: Path, policy: LaunchPolicy | None = None):
        self.home = Path(home)
        use_home_caches(self.home)
        self.policy = policy or LaunchPolicy()
        self.demo = self.policy.demo  # studio.demo_mode.DemoLimits, or None
        self.store = RunStore(self.home)
        self.visitors = None
        if self.demo is not None:  # strangers share this studio: each sees only their own runs
            from studio.demo_mode import DemoJobManager, ScopedRunStore, Visitors

            self.visitors = Visitors()  # the UI tells it how to find the current session
            self.store = ScopedRunStore(self.store, self.visitors)
            self.jobs = DemoJobManager(self.store, self.demo)
        else:
            self.jobs = JobManager(self.store)
        self.uploads = self.home / "uploads"
        self.crashed = self.store.recover_crashed()

    def start(self, request: StudioConfig | list[str] | None = None) -> Run:
        """Start a run for a network caller (the browser form or the HTTP API).

        `request` is a config (the form) or key=value strings on top of the default config (the
        API). This is the one door from the network to the job manager: launch-time policy
        (remote code, allowed model folders, uploads) is enforced here, before the model check
        (which would run a model's own code) and before any run folder exists; the CLI, run by
        the machine's own user, calls the job manager directly.
        """
        cfg = request if isinstance(request, StudioConfig) else apply_overrides(StudioConfig(), list(request or []))
        return self.jobs.start(self.admit(cfg))

    def admit(self, cfg: StudioConfig) -> StudioConfig:
        """The launch-time policy for settings from the network (remote code, model folders,
        datasets), or UserError; every network door to training (Start, the API, sweeps) passes
        here before the model check, which could run a model's own code."""
        if cfg.model.trust_remote_code and not self.policy.allow_remote_code:
            raise UserError("security.remote_code_off", key="model.trust_remote_code")
        self.resolve_user_path(cfg.model.path, "model")
        self.resolve_user_path(cfg.data.path, "data")
        for ref in _mix_refs(cfg):
            try:
                self.resolve_user_path(ref, "data")
            except UserError as exc:  # said next to the mix field, not the dataset field
                raise UserError(exc.msg, key="data.mix") from None
        if self.demo is not None:  # model size and steps caps, before any weights load
            from studio.demo_mode import check_config

            check_config(cfg, self.demo, self.policy.allow_remote_code)
        return cfg

    def for_visitor(self, fn):
        """`fn` acting for the current visitor when called from a background thread (a sweep's
        trials are theirs); `fn` itself outside demo mode."""
        return self.visitors.bind(fn) if self.visitors is not None else fn

    def owner(self) -> str | None:
        """Demo mode: the current visitor's owner key (what their runs and sweeps record); None
        outside demo mode or outside a request (trusted backend work sees everything)."""
        visitor = self.visitors.current() if self.visitors is not None else None
        if visitor is None:
            return None
        from studio.demo_mode import owner_key

        return owner_key(visitor)

    def sees(self, record: dict | None) -> bool:
        """Whether the current visitor may see (and stop) a sweep record: their own, in demo mode."""
        mine = self.owner()
        return record is not None and (mine is None or record.get("owner") == mine)

    def refuse_in_demo(self, feature: str) -> None:
        """UserError when demo mode turns `feature` off ('export': disk export and Hub push)."""
        if self.demo is not None:
            raise UserError(OFF_IN_DEMO[feature])

    def resolve_user_path(self, text: str, kind: str = "data") -> str:
        """A dataset or model named by a network caller -> what the backend may load, or UserError.

        Accepted: bundled names ('demo', 'demo-en', …), Hub ids (owner/name), `library:<id>` of
        a dataset saved in this home (returned as given), and local paths
        under the studio home (runs, uploads) or the bundled assets. Model folders are never
        upload folders; on a studio that is not exposed any other local model folder is fine
        (the user typed it), on an exposed one only folders under a `--model-dir`.
        """
        if kind not in PATH_KINDS:
            raise ValueError(f"kind must be one of {PATH_KINDS}")
        text = (text or "").strip()
        key = f"{kind}.path"
        if kind == "data" and is_library_ref(text):  # a prepared dataset of this home, by id
            from studio.library import Library

            Library(self.home).folder(text)  # UserError when it is not there (ids are never paths)
            return text
        resolved = resolve_model_path(text) if kind == "model" else resolve_data_path(text)
        if text in DEMO_DATA or text == "demo":
            return resolved
        if not Path(resolved).is_absolute():  # not on disk: a Hub id, or a path that is not there
            if HUB_ID.fullmatch(text) and ".." not in text:
                return text
            raise UserError("security.path_not_allowed", key=key, path=text)
        if kind == "model":
            if any(is_within(resolved, folder) for folder in upload_folders(self.home)):
                raise UserError("security.upload_not_model", key=key, path=text)
            allowed = [ASSETS, self.home / "runs", *self.policy.model_dirs]
            if not self._visitor_may_read(resolved):
                raise UserError("security.path_not_allowed", key=key, path=text)
            if not self.policy.exposed or any(is_within(resolved, f) for f in allowed):
                return resolved
            raise UserError("security.model_dir_required", key=key, path=text)
        readable = any(is_within(resolved, folder) for folder in (self.home, ASSETS))
        if readable and self._visitor_may_read(resolved):
            return resolved
        raise UserError("security.path_not_allowed", key=key, path=text)

    def _visitor_may_read(self, path: str) -> bool:
        """In demo mode, another visitor's uploads and runs are not this visitor's to read."""
        if self.demo is None:
            return True
        if is_within(path, self.uploads):
            return is_within(path, self.upload_folder())
        runs = self.home / "runs"
        if is_within(path, runs) and os.path.realpath(path) != os.path.realpath(runs):
            run_id = Path(os.path.relpath(os.path.realpath(path), os.path.realpath(runs))).parts[0]
            return self.has_run(run_id)
        return True

    def library(self):
        """The prepared datasets of this home (studio.library.Library)."""
        from studio.library import Library

        return Library(self.home)

    def has_run(self, run_id: str) -> bool:
        try:
            self.store.get(run_id)
            return True
        except KeyError:
            return False

    def upload_folder(self) -> Path:
        """Where uploads go: <home>/uploads/, in demo mode a folder per visitor below it."""
        visitor = self.visitors.current() if self.visitors is not None else None
        if visitor is None:
            return self.uploads
        from studio.demo_mode import owner_key

        return self.uploads / owner_key(visitor)

    def uploaded_datasets(self) -> list[str]:
        folder = self.upload_folder()
        if not folder.is_dir():
            return []
        return sorted(str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in UPLOAD_TYPES)

    def save_upload(self, temp_path: str) -> str:
        """Copy a browser upload into <home>/uploads/ under a safe name; returns the new path.

        The source must be a file Gradio received over the upload route (its cache folder), so
        a direct call to the handler cannot copy other files of the machine into the home.
        """
        source = Path(temp_path)
        if source.suffix.lower() not in UPLOAD_TYPES:
            raise UserError("security.upload_type", name=source.name)
        if not any(is_within(source, folder) for folder in upload_folders(self.home)[1:]):
            raise UserError("security.path_not_allowed", path=str(temp_path))
        if source.stat().st_size > self.policy.max_upload_bytes:  # Gradio checks too; a client may not
            from studio.estimate import human_bytes

            raise UserError("demo.upload_too_big", name=source.name,
                            cap=human_bytes(self.policy.max_upload_bytes))
        folder = self.upload_folder()
        folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", source.name).lstrip(".") or "data.json"
        target = folder / name
        shutil.copyfile(source, target)
        return str(target)


def _mix_refs(cfg: StudioConfig) -> list[str]:
    """The library datasets data.mix names (none when its syntax is wrong: validation says so)."""
    from studio.library import parse_mix

    try:
        return [ref for ref, _ in parse_mix(cfg.data.mix)] if cfg.data.mix.strip() else []
    except UserError:
        return []
