"""Several processes for one run: the launch command, its checks, and the job that follows it.

    check_launch(cfg)                        # before a run exists: UserError(key=train.processes …)
    launch_command(run, home)                # torchrun on CPUs (gloo), accelerate launch on GPUs
    work = processes_work(home)              # a job manager work function (studio.jobs)
    jobs.submit(run, work)                   # the thread follows the processes through the run folder

`train.processes` > 1 makes the job manager start the backend as a subprocess tree instead of
training in its own thread: `python -m studio.train --run-id ID` under `torchrun` (CPU, DDP over
gloo) or `accelerate launch --config_file recipes/accelerate/<strategy>.yaml` (GPUs: DDP, FSDP,
DeepSpeed ZeRO-2/3). Rank 0 trains into the very run folder the job manager created, so the page
follows it exactly as an in-process run (status.json, metrics.jsonl). Stop writes a request file
into the run folder; rank 0's recorder sees it at the next step and every rank stops at that
same step (RunRecorder all-reduces the flag), saves, and exits normally — no signal has to cross
the launcher, whose own shutdown would kill workers 30 s into a save.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from studio.config import StudioConfig
from studio.errors import UserError
from studio.i18n import Msg
from studio.runs import Run

ACCELERATE_CONFIGS = Path(__file__).resolve().parent.parent / "recipes" / "accelerate"
STRATEGY_FILES = {"ddp": "ddp.yaml", "fsdp": "fsdp.yaml", "zero2": "deepspeed_zero2.yaml",
                  "zero3": "deepspeed_zero3.yaml"}
LOG_NAME = "processes.log"  # the launcher's and every rank's terminal output
POLL_SECONDS = 0.5


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_launch(cfg: StudioConfig, gpus: int | None = None, cpus: int | None = None) -> None:
    """Refuse a process count or strategy this machine cannot run, before any run folder exists."""
    t = cfg.train
    if t.processes <= 1:
        return
    gpus = gpu_count() if gpus is None else gpus
    if gpus:
        if t.processes > gpus:
            raise UserError("dist.too_many_gpus", key="train.processes", n=t.processes, gpus=gpus)
        if t.distributed.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
            raise UserError("dist.no_deepspeed", key="train.distributed")
        return
    if t.distributed != "ddp":
        raise UserError("dist.cpu_ddp_only", key="train.distributed", strategy=t.distributed)
    if cpus is None:
        from studio.models import usable_cpus

        cpus = usable_cpus()
    if t.processes > cpus:
        raise UserError("dist.too_many_cpus", key="train.processes", n=t.processes, cpus=cpus)


def launch_command(run: Run, home: Path, resume_from: str | None = None, gpus: int | None = None) -> list[str]:
    """The command that trains `run` in `train.processes` processes (rank 0 writes into the run)."""
    cfg = run.config()
    n = str(cfg.train.processes)
    target = ["-m", "studio.train", "--run-id", run.id, "--home", str(home)]
    if resume_from:
        target += ["--resume-from", str(resume_from)]
    gpus = gpu_count() if gpus is None else gpus
    if gpus:
        config = ACCELERATE_CONFIGS / STRATEGY_FILES[cfg.train.distributed]
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
                "--num_processes", n, "--main_process_port", str(free_port()), *target]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", n,
            "--master_port", str(free_port()), *target]


def launch_environment(processes: int, gpus: int) -> dict:
    """Each CPU rank gets its share of the CPUs (torch would give each of them all of them)."""
    env = dict(os.environ)
    from studio.hub import token

    if token():  # the form's Hub token reaches the processes through their environment only
        env["HF_TOKEN"] = token()
    if not gpus:
        from studio.models import usable_cpus

        env["OMP_NUM_THREADS"] = str(max(1, usable_cpus() // processes))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def processes_work(home: Path, resume_from: str | None = None):
    """A work function (studio.jobs) that trains the run in several processes and follows them."""

    def work(run: Run, stop_event: threading.Event) -> dict:
        gpus = gpu_count()
        run.clear_stop_request()  # a request left by an earlier, stopped attempt
        command = launch_command(run, home, resume_from, gpus)
        run.log(" ".join(command))
        with open(run.path / LOG_NAME, "ab") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=launch_environment(run.config().train.processes, gpus),
                                    cwd=str(ACCELERATE_CONFIGS.parent.parent), start_new_session=True)
            try:
                while proc.poll() is None:
                    if stop_event.is_set() and not run.stop_requested():
                        run.request_stop()
                    time.sleep(POLL_SECONDS)
            except BaseException:  # this thread is going away: the processes must not outlive it
                proc.terminate()
                raise
        return outcome(run, proc.returncode, stop_event)

    return work


def outcome(run: Run, returncode: int, stop_event: threading.Event) -> dict:
    """The job's result from what rank 0 wrote into the run folder (and the launcher's exit code)."""
    status = run.status()
    state = status.get("state")
    message = Msg.from_dict(status["message_msg"]) if status.get("message_msg") else None
    if state == "completed" and returncode == 0:
        return {"message": message} if message else {}
    if state == "stopped":
        stop_event.set()  # stopped by a request or a signal: the job ends stopped, not completed
        return {"message": message} if message else {}
    if state == "failed" and message is not None:
        return {"failure": message}
    return {"failure": Msg("dist.exited", status=returncode, tail=last_line(run.path / LOG_NAME),
                           log=str(run.path / LOG_NAME))}


def last_line(path: Path, limit: int = 300) -> str:
    """The last non-empty line of a log (the error a crashed rank printed), shortened."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 8192))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


def free_port() -> int:
    """A free TCP port on this machine for the processes' rendezvous."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
