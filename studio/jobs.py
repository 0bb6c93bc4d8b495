"""The job manager: runs any piece of work on a run folder, one at a time (one device), to a final state.

    jobs = JobManager(store)
    run = jobs.start(cfg)          # training: check everything (nothing created on bad input),
                                   # create the run folder, train in a background thread
    jobs.data_report               # what the data check found (its "summary" is a Msg to show)
    run = jobs.submit(run, work)   # any other kind of work on an existing run folder
    plan = jobs.resume(run, ["max_steps=200"])   # a crashed/stopped/failed run from its last
                                   # complete checkpoint, same folder (studio.resume)
    jobs.active_run()              # the Run being worked on, or None
    jobs.stop()                    # ask the work to stop after its current step; it saves
    jobs.wait()                    # block until the thread ends (CLI, tests)

A kind of work is a plain function `work(run, stop_event) -> dict` (training is
`studio.train.run_training`; evaluation, DPO, augmentation and sweeps are more of the same). It
reads its settings from `run.config()`, reports phases and progress with `run.update_status(phase=…)`
and `run.append_metric(…)`, checks `stop_event` between steps, and returns what it produced:
`{"message": Msg, "failure": Msg | None, "output": …, …}` (extra keys go into status.json).

The manager owns the lifecycle, the same for every kind of work (`run_job`): it marks the run
running with the identity of this process, sends library warnings and log lines to the run's
logs.txt, catches everything the work raises, and always leaves a final state — failed, stopped
or completed — in status.json, or in memory when the disk is full. Every caller (the UI's button,
the HTTP API, the CLI, `python -m studio.train`) goes through here, so a second start is refused
the same way wherever it comes from.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
import warnings
import weakref

from studio.config import StudioConfig, validate
from studio.diagnostics import record_failure
from studio.errors import UserError, UserErrors, explain
from studio.i18n import Msg, t
from studio.models import check_model
from studio.runs import Run, RunStore, process_identity

# Libraries whose warnings and log lines belong in the run's logs.txt, not the terminal.
LIBRARY_LOGGERS = ("transformers", "trl", "peft", "accelerate", "bitsandbytes", "datasets", "torch")

_managers: "weakref.WeakSet[JobManager]" = weakref.WeakSet()


def run_training(run: Run, stop_event: threading.Event, resume_from: str | None = None) -> dict:
    # Imported here: transformers/TRL/PEFT take seconds to import, and the UI must start fast.
    from studio.train import run_training as train

    return train(run, stop_event, resume_from=resume_from)


class _RunLogHandler(logging.Handler):
    def __init__(self, run: Run):
        super().__init__(logging.INFO)
        self.run = run

    def emit(self, record: logging.LogRecord) -> None:
        self.run.log(f"{record.levelname} {record.name}: {record.getMessage()}")


@contextlib.contextmanager
def library_output_to(run: Run):
    """While a job runs, Python warnings and the ML libraries' loggers write to the run's logs.txt."""
    handler = _RunLogHandler(run)
    saved = []
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers, logger.propagate = [handler], False
    shown = warnings.showwarning

    def to_log(message, category, filename, lineno, file=None, line=None):
        run.log(warnings.formatwarning(message, category, filename, lineno, line).rstrip())

    warnings.showwarning = to_log
    try:
        yield
    finally:
        warnings.showwarning = shown
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate


def _record(run: Run, **changes) -> dict:
    """Update the status; on a full disk the change is kept in memory (Run.status() shows it)."""
    try:
        return run.update_status(**changes)
    except OSError:
        return run.status()


FINAL_MESSAGES = {"completed": Msg("jobs.completed"), "stopped": Msg("jobs.stopped")}


def run_job(run: Run, work, stop_event: threading.Event) -> dict:
    """Run `work(run, stop_event)` in this thread with the lifecycle every job shares.

    Returns the final status; never raises: whatever happens, the run ends failed, stopped or
    completed."""
    started = time.time()
    outcome: dict = {}
    with library_output_to(run):
        try:
            run.update_status(state="running", phase="starting", message=Msg("jobs.starting"),
                              started_at=started, **process_identity())
            outcome = dict(work(run, stop_event) or {})
            failure = outcome.pop("failure", None)
        except BaseException as exc:  # the run must end in a final state whatever happened
            run.log(traceback.format_exc())
            failure = explain(exc)
            record_failure(run, exc)  # frees memory; out of memory also becomes a diagnostic event
    message = outcome.pop("message", None)
    state = "failed" if failure else "stopped" if stop_event.is_set() else "completed"
    message = failure or message or FINAL_MESSAGES[state]
    run.log(str(message))
    ended = time.time()
    final = {"state": state, "phase": state, "message": message, "ended_at": ended,
             "duration_s": round(ended - started, 1)}
    try:
        return _record(run, **{**outcome, **final})
    except Exception:  # a result status.json cannot hold must not cost the run its final state
        run.log(traceback.format_exc())
        return _record(run, **final)


def _validate(cfg: StudioConfig) -> None:
    problems = validate(cfg)
    if problems:  # every bad setting at once, so a form can flag them all
        raise UserErrors({key: value if isinstance(value, Msg) else Msg(value)
                          for key, value in problems.items()})


class JobManager:
    def __init__(self, store: RunStore):
        self.store = store
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._run: Run | None = None
        self._stop = threading.Event()
        self.data_report: dict | None = None
        _managers.add(self)

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def active_run(self) -> Run | None:
        return self._run if self.busy() else None

    def check(self, cfg: StudioConfig) -> dict | None:
        """Everything that can be checked before a run exists: all bad settings at once
        (UserErrors), the model (config.json only), then the data. Returns the data report."""
        _validate(cfg)
        from studio.distributed import check_launch

        check_launch(cfg)  # a process count or strategy this machine cannot run
        check_model(cfg.model)  # waits for the UI's background import first (studio.startup)
        from studio import data

        check_data = getattr(data, "check_training_data", None)
        return check_data(cfg) if check_data else None

    def create(self, cfg: StudioConfig) -> Run:
        """A run folder for cfg; a full disk is one sentence and leaves no folder behind."""
        try:
            return self.store.create(cfg)
        except OSError as exc:
            raise UserError(explain(exc)) from None

    def start(self, cfg: StudioConfig) -> Run:
        """Check cfg, create its run folder and train it in the background."""
        _validate(cfg)  # bad settings are reported even while another run is busy
        with self._lock:
            self._refuse_if_busy()
            try:
                report = self.check(cfg)
            except OSError as exc:  # e.g. a full disk while the data check writes its cache
                raise UserError(explain(exc)) from None
            run = self.create(cfg)
            self.data_report = report
            summary = (report or {}).get("summary")
            if summary is not None:
                run.log(str(summary))
            return self._launch(run, self.work_for(cfg))

    def resume(self, run: Run, overrides=()) -> dict:
        """Resume a crashed, stopped or failed run from its last complete checkpoint, in the same
        folder (studio.resume). Refusals raise UserError and change nothing. Returns the plan."""
        from studio.resume import prepare_resume

        with self._lock:
            self._refuse_if_busy()
            plan = prepare_resume(run, overrides)
            self._launch(run, self.work_for(run.config(), resume_from=plan["checkpoint"]))
            return plan

    def work_for(self, cfg: StudioConfig, resume_from: str | None = None):
        """Training in this process's job thread, or, for `train.processes` > 1, in a process tree
        that this thread starts and follows through the run folder (studio.distributed)."""
        import functools

        if cfg.train.processes > 1:
            from studio.distributed import processes_work

            return processes_work(self.store.root.parent, resume_from)
        return functools.partial(run_training, resume_from=resume_from) if resume_from else run_training

    def submit(self, run: Run, work) -> Run:
        """Run `work(run, stop_event)` on an existing run folder in the background."""
        with self._lock:
            self._refuse_if_busy()
            return self._launch(run, work)

    def _refuse_if_busy(self) -> None:
        if self.busy():
            raise UserError("jobs.busy", run=self._run.id)

    def _launch(self, run: Run, work) -> Run:
        self._stop = threading.Event()
        self._run = run
        self._thread = threading.Thread(target=run_job, args=(run, work, self._stop),
                                        name=f"job-{run.id}", daemon=True)
        self._thread.start()
        return run

    def stop(self) -> Run | None:
        run = self.active_run()
        if run is not None:
            _record(run, state="stopping", message=Msg("jobs.stopping"))  # before the work can end
            self._stop.set()
        return run

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


# Set once a SIGTERM arrived: the command is ending, so it keeps the repeat-ignoring handler
# rather than restoring the default one (which a second SIGTERM would turn into a kill).
SIGTERM_RECEIVED = threading.Event()


def stop_jobs_on_sigterm(timeout: float = 600, interrupt_main: bool = True):
    """On SIGTERM, stop every active job, let it save and end `stopped`, then exit as on Ctrl-C.

    A process running as PID 1 (a container) gets no default action for SIGTERM, so without a
    handler `docker stop` would wait and then kill the job mid-save. Call from the main thread
    of a command (`studio ui`, `studio train`); the command's KeyboardInterrupt path then exits.
    Returns the previous handler (to restore), or None where no handler can be installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return None  # only the main thread may install signal handlers
    stopping: list[threading.Thread] = []
    saved = threading.Event()

    def stop_then_interrupt(active):
        for manager in active:
            manager.stop()
        for manager in active:
            manager.wait(timeout)
        if interrupt_main:  # `studio ui`: now its Ctrl-C path exits. Commands that wait for the
            # job end by themselves once it is saved (no late interrupt). Not _thread.interrupt_main:
            # it does nothing where SIGINT is ignored, as a background job of a non-interactive
            # shell inherits it (the UI then never exited). This handler raises it instead.
            saved.set()
            os.kill(os.getpid(), signal.SIGTERM)

    def on_sigterm(signum, frame):
        if saved.is_set():
            raise KeyboardInterrupt
        # The handler runs in the main thread, which may be holding the status lock at this very
        # moment: waiting here for the job (which needs that lock) would deadlock. So the stop and
        # the wait happen in a thread of their own, and further SIGTERMs (`timeout`, `docker
        # stop`, an impatient user) do not start a second one.
        SIGTERM_RECEIVED.set()
        if stopping:
            return
        active = [m for m in list(_managers) if m.busy()]
        if not active:
            raise KeyboardInterrupt
        print(t("jobs.terminating"), file=sys.stderr, flush=True)
        stopping.append(threading.Thread(target=stop_then_interrupt, args=(active,),
                                         name="sigterm-stop", daemon=True))
        stopping[0].start()

    return signal.signal(signal.SIGTERM, on_sigterm)
