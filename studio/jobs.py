"""The one background-thread job manager: at most one training job per process (one GPU).

    jobs = JobManager(store)
    run = jobs.start(cfg)     # validates first (UserError, no run created), then trains in a thread
    jobs.active_run()         # the Run being trained, or None
    jobs.stop()               # finish the current step, save, mark 'stopped'
    jobs.wait()               # block until the thread ends (CLI, tests)

Every caller — the UI's button, the HTTP API, the CLI — goes through `start`, so a second start
is refused the same way wherever it comes from.
"""

from __future__ import annotations

import threading

from studio.config import StudioConfig, validate
from studio.errors import UserError
from studio.models import check_model
from studio.runs import Run, RunStore


def _train_in_thread(cfg, run, stop_event):
    # Imported here: transformers/TRL/PEFT take seconds to import, and the UI must start fast.
    from studio.train import run_training

    run_training(cfg, run, stop_event)


_warm_up: threading.Thread | None = None


def warm_up() -> None:
    """Import the training stack in the background so the first Start is quick."""
    global _warm_up
    _warm_up = threading.Thread(target=lambda: __import__("studio.train"), name="warm-up", daemon=True)
    _warm_up.start()


def _wait_for_warm_up() -> None:
    # transformers' lazy module is not safe to import from two threads at once.
    if _warm_up is not None:
        _warm_up.join()


class JobManager:
    def __init__(self, store: RunStore):
        self.store = store
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._run: Run | None = None
        self._stop = threading.Event()

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def active_run(self) -> Run | None:
        return self._run if self.busy() else None

    def start(self, cfg: StudioConfig) -> Run:
        problems = validate(cfg)
        if problems:
            key, message = next(iter(problems.items()))
            raise UserError(message, key=key)
        _wait_for_warm_up()
        with self._lock:
            if self.busy():
                raise UserError(f"A training run is already in progress ({self._run.id}): "
                                "stop it or wait for it to finish.")
            check_model(cfg.model)  # fast (config.json only) and before any run folder exists
            self._stop = threading.Event()
            self._run = self.store.create(cfg)
            self._run.update_status(state="running", phase="loading model",
                                    message="Loading the base model")
            self._thread = threading.Thread(target=_train_in_thread, args=(cfg, self._run, self._stop),
                                            name=f"train-{self._run.id}", daemon=True)
            self._thread.start()
            return self._run

    def stop(self) -> Run | None:
        run = self.active_run()
        if run is not None:
            self._stop.set()
            run.update_status(state="stopping", message="Stopping after the current step")
        return run

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
