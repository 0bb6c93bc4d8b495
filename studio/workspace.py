"""A studio home opened for use: the run store, the one job manager, uploads and the launch policy.

    ws = Workspace(home)                  # marks runs left 'running' by a dead process as crashed
    ws = Workspace(home, LaunchPolicy.for_launch(host="0.0.0.0", model_dirs=["/models"]))
    run = ws.start(["epochs=1", "method=lora"])      # same path as the Start button
    path = ws.resolve_user_path("demo-en", "data")  # a path from the network, checked
    ws.jobs.stop()

The UI and the HTTP API share one Workspace per process, so a second start is refused whether
it comes from the button, a second tab or a script. Everything the network sends that names a
file or a folder goes through `resolve_user_path`, and every start through `start`: together they
are the studio's boundary (see studio/security.py for why each rule exists).
"""

from __future__ import annotations

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


class Workspace:
    def __init__(self, home: Path, policy: LaunchPolicy | None = None):
        self.home = Path(home)
        use_home_caches(self.home)
        self.policy = policy or LaunchPolicy()
        self.store = RunStore(self.home)
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
        return cfg

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
            if not self.policy.exposed or any(is_within(resolved, f) for f in allowed):
                return resolved
            raise UserError("security.model_dir_required", key=key, path=text)
        if any(is_within(resolved, folder) for folder in (self.home, ASSETS)):
            return resolved
        raise UserError("security.path_not_allowed", key=key, path=text)

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

    def uploaded_datasets(self) -> list[str]:
        if not self.uploads.is_dir():
            return []
        return sorted(str(p) for p in self.uploads.iterdir() if p.suffix.lower() in UPLOAD_TYPES)

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
        self.uploads.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", source.name).lstrip(".") or "data.json"
        target = self.uploads / name
        shutil.copyfile(source, target)
        return str(target)


def _mix_refs(cfg: StudioConfig) -> list[str]:
    """The library datasets data.mix names (none when its syntax is wrong: validation says so)."""
    from studio.library import parse_mix

    try:
        return [ref for ref, _ in parse_mix(cfg.data.mix)] if cfg.data.mix.strip() else []
    except UserError:
        return []
