"""A quick sweep: short trial runs of one setting, one after another, and the best value named.

    spec = SweepSpec.parse("learning_rate", "1e-4, 3e-4, 1e-3", base_cfg)   # UserError on bad input
    sweep = start_sweep(jobs, base_cfg, spec)     # refused while a training or a sweep runs
    sweep.wait()                                  # (CLI, tests) the UI polls the record instead
    record = sweep.record()                       # {"id", "param", "values", "trials", "state", "best", …}
    cfg = best_config(record)                     # the base settings with the best value: a full run
    sweep.stop()                                  # stops the current trial and skips the rest

Each trial is a normal run folder (named "sweep <param>=<value>", so it is listed in the Runs
tab) started through the ONE job manager, so a sweep and a training never share the device. A
background thread (the coordinator) starts a trial, waits for it to end, then starts the next;
a failed trial is recorded and the sweep goes on. The record `<home>/sweeps/<id>.json` is the
source of truth: the page reads it (a reload shows the same sweep), and a record left active by
a process that is gone reads as crashed.

Trials are short (SHORT_STEPS): for learning_rate and lora_r each trial trains at most
SHORT_STEPS steps (fewer when the base settings ask for fewer); for epochs the number of steps is
what is being compared, so the trial uses at most SHORT_SAMPLES examples instead. The best value
is the one with the lowest final eval loss; with no validation data, the lowest final train loss
(`best["by"]` says which).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from studio.config import StudioConfig, from_dict, set_value, to_dict, validate, METHOD_FIELDS
from studio.errors import UserError, explain
from studio.runs import FINAL_STATES, _write_json_atomic, owner_alive, process_identity

PARAMS = {"learning_rate": "train.learning_rate", "lora_r": "method.lora_r", "epochs": "train.epochs"}
MIN_VALUES, MAX_VALUES = 2, 5
SHORT_STEPS = 30     # the most steps a learning_rate / lora_r trial trains
SHORT_SAMPLES = 200  # the most examples an epochs trial trains on
ACTIVE = ("running", "stopping")

_lock = threading.Lock()
_active: dict[str, "Sweep"] = {}  # home -> the sweep this process is running there


def value_text(value) -> str:
    """A value as people write it: 0.0003 -> '0.0003', 1e-06 -> '1e-06', 16 -> '16'."""
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class SweepSpec:
    param: str
    values: list

    @property
    def key(self) -> str:
        return PARAMS[self.param]

    @classmethod
    def parse(cls, param: str, text, base: StudioConfig) -> "SweepSpec":
        """The setting and its values ("1e-4, 3e-4" or a list), each checked like a form value."""
        param = (param or "").strip()
        if param not in PARAMS:
            raise UserError("sweep.bad_param", key="sweep.param", param=param, options=", ".join(PARAMS))
        items = text if isinstance(text, (list, tuple)) else re.split(r"[,，;；\s]+", str(text or ""))
        items = [str(item).strip() for item in items if str(item).strip()]
        spec = cls(param, [])
        for item in items:
            spec.values.append(spec.check_value(item, base))
        spec.check(base)
        return spec

    def check_value(self, item, base: StudioConfig):
        """One value through the config's own parsing and bounds: a bad one is one sentence."""
        cfg = set_value(base, self.key, item)  # UserError: not a number
        problem = validate(cfg).get(self.key)
        if problem is not None:
            raise UserError(problem, key="sweep.values")
        return getattr(cfg.method if self.key.startswith("method.") else cfg.train, self.key.split(".")[1])

    def check(self, base: StudioConfig) -> None:
        if not MIN_VALUES <= len(self.values) <= MAX_VALUES:
            raise UserError("sweep.value_count", key="sweep.values", min=MIN_VALUES, max=MAX_VALUES,
                            count=len(self.values))
        if len(set(self.values)) != len(self.values):
            raise UserError("sweep.duplicate_values", key="sweep.values")
        if self.key.startswith("method.") and self.key not in METHOD_FIELDS.get(base.method.method, []):
            raise UserError("sweep.param_unused", key="sweep.param", param=self.param,
                            method=base.method.method)
        for value in self.values:
            self.check_value(value, base)


def short_rule(param: str, base: StudioConfig) -> dict:
    """What makes a trial short: the settings it overrides ({key: value})."""
    if param == "epochs":
        samples = base.data.max_samples
        return {"train.max_steps": 0,
                "data.max_samples": min(samples, SHORT_SAMPLES) if samples else SHORT_SAMPLES}
    steps = base.train.max_steps
    return {"train.max_steps": min(steps, SHORT_STEPS) if steps else SHORT_STEPS}


def trial_config(base: StudioConfig, spec: SweepSpec, value) -> StudioConfig:
    cfg = set_value(base, spec.key, value)
    for key, short in short_rule(spec.param, base).items():
        cfg = set_value(cfg, key, short)
    return set_value(cfg, "name", f"sweep {spec.param}={value_text(value)}")


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def choose_best(trials: list[dict]) -> dict | None:
    """The completed trial with the lowest final eval loss; when no trial has one, the lowest
    final train loss. {"index", "value", "by": "eval_loss"|"loss", "loss"} or None."""
    done = [(i, t) for i, t in enumerate(trials) if t.get("state") == "completed"]
    for by in ("eval_loss", "loss"):
        scored = [(t[f"final_{by}"], i, t) for i, t in done if _number(t.get(f"final_{by}")) is not None]
        if scored:
            loss, index, trial = min(scored, key=lambda item: item[0])
            return {"index": index, "value": trial["value"], "by": by, "loss": loss}
    return None


def sweeps_dir(home) -> Path:
    return Path(home) / "sweeps"


def load_record(home, sweep_id: str) -> dict | None:
    """A sweep's record; one left active by a process that is gone reads as crashed."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", sweep_id or ""):
        return None
    try:
        record = json.loads((sweeps_dir(home) / f"{sweep_id}.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    mine = _active.get(str(Path(home)))
    if record.get("state") in ACTIVE and not (mine and mine.id == sweep_id) and not owner_alive(record):
        record["state"] = "crashed"
    return record


def latest_record(home) -> dict | None:
    folder = sweeps_dir(home)
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return load_record(home, files[-1].stem) if files else None


def best_config(record: dict) -> StudioConfig | None:
    """The base settings with the best value: the settings of a full run (no trial caps)."""
    best = record.get("best")
    if not best:
        return None
    cfg = from_dict(record["base"])
    return set_value(set_value(cfg, PARAMS[record["param"]], best["value"]), "name", "")


def active_sweep(home) -> "Sweep | None":
    sweep = _active.get(str(Path(home)))
    return sweep if sweep is not None and sweep.alive() else None


class Sweep:
    """The coordinator of one sweep. `start_sweep` makes and starts one; read it via `record()`."""

    def __init__(self, jobs, base: StudioConfig, spec: SweepSpec, start=None, owner: str | None = None):
        self.jobs, self.base, self.spec = jobs, base, spec
        self.home = Path(jobs.store.root).parent
        self.start_run = start or jobs.start  # the UI passes Workspace.start (the launch policy)
        self.id = f"{time.strftime('%Y%m%d-%H%M%S')}-{spec.param}-{secrets.token_hex(2)}"
        self.path = sweeps_dir(self.home) / f"{self.id}.json"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._record_lock = threading.Lock()
        self._record = {
            "id": self.id, "param": spec.param, "key": spec.key, "values": list(spec.values),
            "short": short_rule(spec.param, base), "base": to_dict(base), "state": "running",
            "current": None, "best": None, "created_at": time.time(), "ended_at": None,
            "trials": [{"value": v, "label": f"{spec.param}={value_text(v)}", "run_id": None,
                        "state": "waiting", "final_eval_loss": None, "final_loss": None,
                        "started_at": None, "ended_at": None, "message": None} for v in spec.values],
            "owner": owner,  # demo mode: the visitor who started it (only they see and stop it)
            **process_identity()}

    # ---- the record -------------------------------------------------------------------------
    def record(self) -> dict:
        with self._record_lock:
            return json.loads(json.dumps(self._record))

    def _save(self, **changes) -> None:
        with self._record_lock:
            self._record.update(changes)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _write_json_atomic(self.path, self._record)
            except OSError:  # a full disk: the record lives on in memory (record()), the sweep goes on
                pass

    def _trial(self, index: int, **changes) -> None:
        with self._record_lock:
            self._record["trials"][index].update(changes)
        self._save()

    # ---- the coordinator --------------------------------------------------------------------
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def launch(self) -> "Sweep":
        self._save()
        self._thread = threading.Thread(target=self._coordinate, name=f"sweep-{self.id}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the current trial (it saves, ends stopped) and skip the trials not yet started."""
        if self._stop.is_set() or not self.alive():
            return
        self._stop.set()
        self._save(state="stopping")
        current = self._record.get("current")
        run = self.jobs.active_run()
        if current is not None and run is not None and run.id == self._record["trials"][current]["run_id"]:
            self.jobs.stop()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _coordinate(self) -> None:
        try:
            for index, value in enumerate(self.spec.values):
                if self._stop.is_set():
                    self._trial(index, state="skipped")
                    continue
                self._run_trial(index, value)
            best = choose_best(self._record["trials"])
            state = "stopped" if self._stop.is_set() else "completed" if best else "failed"
            self._save(state=state, best=best, current=None, ended_at=time.time())
        except BaseException as exc:  # the record must end in a final state whatever happened
            self._save(state="failed", current=None, ended_at=time.time(), message=explain(exc).to_dict())
        finally:
            with _lock:
                if _active.get(str(self.home)) is self:
                    del _active[str(self.home)]

    def _run_trial(self, index: int, value) -> None:
        self._save(current=index)
        self._trial(index, state="starting", started_at=time.time())
        try:
            run = self.start_run(trial_config(self.base, self.spec, value))
        except Exception as exc:  # e.g. a training started by hand between two trials
            self._trial(index, state="failed", message=explain(exc).to_dict(), ended_at=time.time())
            return
        self._trial(index, run_id=run.id, state="running")
        if self._stop.is_set():  # Stop came while the trial was starting
            self.jobs.stop()
        while self.jobs.busy() and getattr(self.jobs.active_run(), "id", None) == run.id:
            self.jobs.wait(0.5)
        status = run.status()
        state = status.get("state") if status.get("state") in FINAL_STATES else "failed"
        self._trial(index, state=state, ended_at=status.get("ended_at") or time.time(),
                    final_loss=_number(status.get("final_loss")) or _last(run, "loss"),
                    final_eval_loss=_number(status.get("final_eval_loss")) or _last(run, "eval_loss"),
                    message=status.get("message_msg") or status.get("message"))


def _last(run, key: str):
    values = [e[key] for e in run.read_metrics() if _number(e.get(key)) is not None]
    return values[-1] if values else None


def _sweep_running_elsewhere(home) -> bool:
    folder = sweeps_dir(home)
    for path in folder.glob("*.json") if folder.is_dir() else []:
        record = load_record(home, path.stem)
        if record and record.get("state") in ACTIVE:
            return True
    return False


def start_sweep(jobs, base: StudioConfig, spec: SweepSpec, start=None, check=True,
                owner: str | None = None) -> Sweep:
    """Start a sweep in the background; refused (one sentence, nothing written) while a training
    or another sweep runs, or when the first trial's settings or data would not start."""
    home = str(Path(jobs.store.root).parent)
    spec.check(base)
    with _lock:
        if active_sweep(home) is not None or _sweep_running_elsewhere(home):
            raise UserError("sweep.already_running")
        if jobs.busy():
            raise UserError("sweep.training_busy", run=jobs.active_run().id)
        if check:  # every problem the first trial would hit, before any run folder exists
            jobs.check(trial_config(base, spec, spec.values[0]))
        sweep = Sweep(jobs, base, spec, start, owner)
        _active[home] = sweep
    return sweep.launch()

