"""Demo mode: a studio that strangers share, e.g. a public Hugging Face Space.

    limits = demo_limits()        # DemoLimits, or None: on with STUDIO_DEMO=1, and by default in a
                                  # Space (SPACE_ID / SYSTEM=spaces) unless STUDIO_DEMO=0
    policy = LaunchPolicy.for_launch(host="0.0.0.0", demo=limits)   # Workspace enforces it
    persistent_home()             # <DATA_ROOT>/finetune-studio on a Space with persistent storage
    runs_lost_on_restart(home)    # a Space whose runs live outside persistent storage

What demo mode changes, all enforced in the backend (every Gradio handler is callable by any
client, so hiding a button is not enough):
- caps: the model's parameter count (read from its config.json on a meta-device skeleton, before
  any weights load), training steps (max_steps, or epochs over the batches of the checked data)
  and the upload size. Defaults below; `STUDIO_DEMO_MAX_PARAMS` (e.g. 150M), `STUDIO_DEMO_MAX_STEPS`
  and `STUDIO_DEMO_MAX_UPLOAD` (e.g. 20MB) override them. One process per run (train.processes).
- no disk export and no Hub push (`Workspace.refuse_in_demo`).
- visitors do not see each other: each browser signs in with an unguessable token (kept in its
  localStorage), each run records its owner (a hash of the token, `owner.json`), and the run
  store a visitor's requests see (`ScopedRunStore`) lists and opens only that visitor's runs;
  uploads go to a folder per visitor. Code outside a request (the CLI, background threads) sees
  everything. A script (gradio_client) without a browser token is the visitor of its session.

No gradio import: the UI tells `Visitors` how to find the current session (`session_of`).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import json
import os
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from studio.errors import UserError
from studio.jobs import JobManager
from studio.runs import Run, RunStore

DEMO_ENV = "STUDIO_DEMO"
# Spaces' persistent storage is mounted here; an env var moves it (tests, other hosts).
DATA_ROOT = Path(os.environ.get("STUDIO_PERSISTENT_DIR", "/data"))
DEFAULT_MAX_PARAMS = 150_000_000  # SmolLM2-135M trains (slowly) on a free 2-vCPU Space
DEFAULT_MAX_STEPS = 500  # the demo recipe's 3 epochs take ~430 steps
DEFAULT_MAX_UPLOAD = "20MB"
OWNER_FILE = "owner.json"
TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")  # what `new_token` makes; anything else is replaced
MAX_SESSIONS = 10_000  # sessions remembered (oldest forgotten: their page then signs in again)

_acting_for: contextvars.ContextVar[str | None] = contextvars.ContextVar("studio_visitor", default=None)


def is_space(environ=None) -> bool:
    """Running on a Hugging Face Space (it sets SPACE_ID and SYSTEM=spaces)."""
    env = os.environ if environ is None else environ
    return bool(env.get("SPACE_ID")) or env.get("SYSTEM") == "spaces"


@dataclass(frozen=True)
class DemoLimits:
    max_params: int = DEFAULT_MAX_PARAMS
    max_steps: int = DEFAULT_MAX_STEPS
    max_upload_bytes: int = 20 * 1024 ** 2


def _count(text: str) -> int:
    """'150M', '1.5B', '20k' or a plain number -> an int (UserError on anything else)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMbBgG]?)\s*", str(text))
    if not match:
        raise UserError("demo.bad_limit", value=str(text))
    scale = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


def demo_limits(environ=None) -> DemoLimits | None:
    """The caps when demo mode is on (STUDIO_DEMO=1, or a Space without STUDIO_DEMO=0), else None."""
    from studio.security import parse_size

    env = os.environ if environ is None else environ
    switch = env.get(DEMO_ENV, "").strip().lower()
    on = switch in ("1", "true", "yes", "on") or (switch == "" and is_space(env))
    if not on:
        return None
    return DemoLimits(max_params=_count(env.get("STUDIO_DEMO_MAX_PARAMS", DEFAULT_MAX_PARAMS)),
                      max_steps=_count(env.get("STUDIO_DEMO_MAX_STEPS", DEFAULT_MAX_STEPS)),
                      max_upload_bytes=parse_size(env.get("STUDIO_DEMO_MAX_UPLOAD", DEFAULT_MAX_UPLOAD)))


def persistent_home(environ=None) -> Path | None:
    """The home on a Space with persistent storage (DATA_ROOT exists and is writable) when no
    STUDIO_HOME is set; None otherwise (the usual home rules apply)."""
    env = os.environ if environ is None else environ
    if env.get("STUDIO_HOME") or not is_space(env):
        return None
    if DATA_ROOT.is_dir() and os.access(DATA_ROOT, os.W_OK | os.X_OK):
        return DATA_ROOT / "finetune-studio"
    return None


def runs_lost_on_restart(home: Path, environ=None) -> bool:
    """A Space whose home is not in persistent storage: a restart empties it (the page says so)."""
    if not is_space(environ):
        return False
    real, root = os.path.realpath(home), os.path.realpath(DATA_ROOT)
    return not (DATA_ROOT.is_dir() and (real == root or real.startswith(root.rstrip(os.sep) + os.sep)))


# ---- the caps, checked where the network's settings enter (Workspace.admit, the job check) --------

def check_config(cfg, limits: DemoLimits, allow_remote_code: bool = False) -> None:
    """Refuse settings over the caps (UserError next to the field), before any weights load."""
    from studio.estimate import human_count

    check_processes(cfg)
    if cfg.train.max_steps > limits.max_steps:
        raise UserError("demo.too_many_steps", key="train.max_steps", steps=cfg.train.max_steps,
                        cap=limits.max_steps)
    total = model_parameters(cfg, allow_remote_code)
    if total > limits.max_params:
        raise UserError("demo.model_too_big", key="model.path", model=cfg.model.path,
                        params=human_count(total), cap=human_count(limits.max_params))


def check_processes(cfg) -> None:
    """One process per run in a demo: several (torchrun / accelerate launch) would take every core
    or GPU of a machine that strangers share."""
    if cfg.train.processes > 1:
        raise UserError("followups.demo_processes", key="train.processes", n=cfg.train.processes)


def model_parameters(cfg, allow_remote_code: bool = False) -> int:
    """The model's parameter count from its config.json (meta device: no weights are read).
    A Hub id not in the cache has its config fetched first (config only), like the model check."""
    from studio.estimate import count_parameters
    from studio.models import check_model

    if cfg.model.trust_remote_code and not allow_remote_code:
        raise UserError("security.remote_code_off", key="model.trust_remote_code")
    # The base model's size, whatever the method adds (a LoRA's own weights are not the model's).
    cfg = dataclasses.replace(cfg, method=dataclasses.replace(cfg.method, method="full"))
    try:
        return int(count_parameters(cfg)["total"])
    except (OSError, ValueError):
        pass
    check_model(cfg.model)  # UserError for a model that is not there; caches its config.json
    try:
        return int(count_parameters(cfg)["total"])
    except (OSError, ValueError):
        raise UserError("demo.model_size_unknown", key="model.path", model=cfg.model.path) from None


def check_steps(cfg, report: dict | None, limits: DemoLimits) -> None:
    """Refuse a run whose epochs come to more steps than the cap (known once the data is checked)."""
    from studio.config import total_steps
    from studio.estimate import train_rows

    if cfg.train.max_steps or not report:
        return
    steps = total_steps(max(1, train_rows(cfg, report)), cfg)
    if steps > limits.max_steps:
        raise UserError("demo.too_many_epochs", key="train.epochs", steps=steps, cap=limits.max_steps)


# ---- visitors ------------------------------------------------------------------------------------

def new_token() -> str:
    return secrets.token_urlsafe(32)


def owner_key(visitor: str) -> str:
    """What a run folder records about its owner: a hash, so the folder never holds a token."""
    return hashlib.sha256(visitor.encode()).hexdigest()[:32]


class Visitors:
    """Who is asking: the visitor of the current request, from its session.

    `session_of` (set by the UI) returns the current request's session id, or None outside a
    request. A browser signs its session in with its token (`sign_in`); a session that did not
    (a script) is a visitor of its own. `bind` carries the visitor into a background thread.
    """

    def __init__(self, session_of: Callable[[], str | None] | None = None):
        self.session_of = session_of or (lambda: None)
        self._tokens: OrderedDict[str, str] = OrderedDict()

    def sign_in(self, session: str, token) -> str:
        """Tie `session` to the browser's token (a new one when it has none or a malformed one)."""
        token = token if isinstance(token, str) and TOKEN.fullmatch(token) else new_token()
        self._tokens[session] = token
        self._tokens.move_to_end(session)
        while len(self._tokens) > MAX_SESSIONS:
            self._tokens.popitem(last=False)
        return token

    def current(self) -> str | None:
        """The visitor asking now, or None outside any request (trusted backend work)."""
        acting = _acting_for.get()
        if acting:
            return acting
        session = self.session_of()
        if session is None:
            return None
        return self._tokens.get(session) or "session:" + session

    @contextlib.contextmanager
    def as_nobody(self):
        """While the page is built: what it is built with is sent to every visitor, so it shows
        nobody's runs (each page loads its visitor's own right after)."""
        reset = _acting_for.set("nobody:" + new_token())
        try:
            yield
        finally:
            _acting_for.reset(reset)

    def bind(self, fn):
        """`fn` acting for the current visitor wherever it is called (e.g. a sweep's thread)."""
        visitor = self.current()
        if visitor is None:
            return fn

        @functools.wraps(fn)
        def acting(*args, **kwargs):
            reset = _acting_for.set(visitor)
            try:
                return fn(*args, **kwargs)
            finally:
                _acting_for.reset(reset)
        return acting


def run_owner(run: Run) -> str | None:
    try:
        return json.loads((run.path / OWNER_FILE).read_text(encoding="utf-8")).get("owner")
    except (OSError, ValueError, AttributeError):
        return None


class ScopedRunStore:
    """A RunStore as the current visitor sees it: only their runs (all of them outside requests).

    Every tab reads runs through `ws.store` (list, all, get, latest, signature), so scoping it
    here is the one filter; a run id of another visitor is 'no such run' (KeyError), as for a
    run that does not exist. Runs without an owner (made before demo mode, or from the CLI) are
    nobody's in a request.
    """

    def __init__(self, store: RunStore, visitors: Visitors):
        self.store = store
        self.visitors = visitors

    def __getattr__(self, name):  # root, recover_crashed, …: the store's own
        return getattr(self.store, name)

    def visible(self, run: Run) -> bool:
        visitor = self.visitors.current()
        return visitor is None or run_owner(run) == owner_key(visitor)

    def create(self, cfg) -> Run:
        run = self.store.create(cfg)
        visitor = self.visitors.current()
        if visitor is not None:
            (run.path / OWNER_FILE).write_text(json.dumps({"owner": owner_key(visitor)}), encoding="utf-8")
        return run

    def get(self, run_id: str) -> Run:
        run = self.store.get(run_id)
        if not self.visible(run):
            raise KeyError(run_id)
        return run

    def all(self) -> list[Run]:
        return [run for run in self.store.all() if self.visible(run)]

    def signature(self) -> tuple:
        return tuple(entry for entry in self.store.signature()
                     if self.visible(Run(self.store.root / entry[0])))

    # The store's own, over this visitor's `all()` (defined last: `list` would shadow the builtin).
    latest = RunStore.latest
    list = RunStore.list


class DemoJobManager(JobManager):
    """The one job manager, as a visitor sees it: another visitor's active run is not theirs to
    see or stop, and a run's steps (epochs over the checked data) stay under the cap."""

    def __init__(self, store: ScopedRunStore, limits: DemoLimits):
        super().__init__(store)
        self.limits = limits

    def active_run(self) -> Run | None:
        run = super().active_run()
        return run if run is not None and self.store.visible(run) else None

    def check(self, cfg) -> dict | None:
        check_processes(cfg)  # every start and sweep checks here too, whichever door it came through
        report = super().check(cfg)
        check_steps(cfg, report, self.limits)
        return report

    def _refuse_if_busy(self) -> None:
        if self.busy() and self.active_run() is None:  # someone else's run: not named to this visitor
            raise UserError("demo.busy")
        super()._refuse_if_busy()
