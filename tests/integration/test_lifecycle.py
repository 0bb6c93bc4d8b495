"""Every job reaches a final state: work functions, a full disk, SIGTERM (also as PID 1), dead owners."""

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from helpers import ROOT, fast_overrides, wait_for
from studio.cli import main
from studio.config import StudioConfig
from studio.errors import UserError
from studio.i18n import Msg
from studio.jobs import LIBRARY_LOGGERS, JobManager
from studio.runs import RunStore, process_identity
from studio.workspace import Workspace


# --- the job manager runs any plain work function to a final state ---------------------------

def run_work(home, work):
    store = RunStore(home)
    jobs = JobManager(store)
    run = jobs.submit(store.create(StudioConfig()), work)
    jobs.wait(60)
    assert not jobs.busy()
    return jobs, run


def test_start_reports_every_bad_setting_at_once_and_creates_nothing(home):
    from studio.config import apply_overrides
    from studio.errors import UserErrors

    jobs = JobManager(RunStore(home))
    bad = apply_overrides(StudioConfig(), ["batch_size=0", "learning_rate=-1", "model=/no/such/model"])
    with pytest.raises(UserErrors) as refused:
        jobs.start(bad)
    assert {"train.batch_size", "train.learning_rate"} <= set(refused.value.problems)
    assert not list((home / "runs").iterdir()) and not jobs.busy()


def test_work_that_returns_ends_completed_with_its_results(home):
    def work(run, stop_event):
        run.update_status(phase="scoring")
        run.append_metric({"step": 1, "loss": 1.0})
        return {"output": "somewhere", "score": 0.5}

    _, run = run_work(home, work)
    status = run.status()
    assert status["state"] == "completed" and status["score"] == 0.5 and status["output"] == "somewhere"
    assert status["message_msg"]["code"] == "jobs.completed" and status["ended_at"] >= status["started_at"]
    assert status["pid_started"] == process_identity()["pid_started"]


def test_work_that_raises_ends_failed_with_one_sentence(home):
    def work(run, stop_event):
        raise OSError(errno.ENOSPC, "No space left on device")

    jobs, run = run_work(home, work)
    assert run.status()["state"] == "failed" and run.status()["message_msg"]["code"] == "error.disk_full"
    assert "Traceback" in (run.path / "logs.txt").read_text()
    _, again = run_work(home, lambda run, stop: None)  # the manager keeps working
    assert again.status()["state"] == "completed"


def test_work_reports_a_failure_it_found(home):
    _, run = run_work(home, lambda run, stop: {"failure": Msg("train.stopped_before")})
    assert run.status()["state"] == "failed"


def test_stop_ends_stopped_and_a_second_submit_is_refused(home):
    store = RunStore(home)
    jobs = JobManager(store)

    def work(run, stop_event):
        while not stop_event.wait(0.05):
            pass
        return {"message": Msg("train.stopped_before")}

    run = jobs.submit(store.create(StudioConfig()), work)
    with pytest.raises(UserError, match="already in progress"):
        jobs.submit(store.create(StudioConfig()), work)
    assert jobs.stop() == run
    jobs.wait(60)
    assert run.status()["state"] == "stopped"


def test_library_warnings_go_to_the_run_log_not_the_terminal(home, capfd):
    def settings():
        return {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
                for name in LIBRARY_LOGGERS}

    before = settings()

    def work(run, stop_event):
        warnings.warn("a deprecation the user cannot act on", UserWarning)
        logging.getLogger("transformers.trainer").warning("a library hint")
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning("pip install kernels")

    _, run = run_work(home, work)
    captured = capfd.readouterr()
    log = (run.path / "logs.txt").read_text()
    for text in ("a deprecation the user cannot act on", "a library hint", "pip install kernels"):
        assert text in log and text not in captured.err + captured.out
    assert settings() == before  # the terminal gets the libraries back after the job


# --- a full disk ---------------------------------------------------------------------------

@pytest.fixture
def small_home(tmp_path):
    """A studio home on a 16 MB tmpfs that a test can fill up."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount / "home"
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill_disk(folder: Path) -> None:
    with open(folder / "filler.bin", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    for name in range(1000):  # the last few bytes: small files until not even those fit
        try:
            (folder / f"filler-{name}").write_bytes(b"\0" * 1024)
        except OSError:
            break


def test_a_full_disk_ends_the_run_failed_and_the_studio_keeps_working(small_home):
    ws = Workspace(small_home)
    orphan = ws.store.create(StudioConfig())  # a run of a studio that was killed earlier
    orphan.update_status(state="running", pid=2**22 + 777)
    run = ws.start(fast_overrides(max_steps=5000, eval_every=10000))
    wait_for(lambda: (run.status().get("step") or 0) >= 1, what="the first step")
    fill_disk(small_home.parent)

    ws.jobs.wait(180)
    assert not ws.jobs.busy()
    status = ws.store.get(run.id).progress()  # what the page and the API read
    assert status["state"] == "failed", status
    assert status["message_msg"]["code"] == "error.disk_full"
    assert "disk is full" in status["message"]
    assert ws.jobs.stop() is None  # Stop answers; nothing is left running

    with pytest.raises(UserError) as refused:
        ws.start(fast_overrides())
    assert refused.value.msg.code == "error.disk_full"
    assert sorted(p.name for p in ws.store.root.iterdir()) == sorted([orphan.id, run.id])

    # A restart on the full disk: a warning, not a refusal (the dead run is marked in memory).
    out = subprocess.run([sys.executable, "-m", "studio", "runs", "--home", str(small_home)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "warning:" in out.stderr and orphan.id in out.stdout


# --- SIGTERM: the run saves, ends stopped, and the process exits --------------------------

def _pid_one_child(wrapper: subprocess.Popen) -> int:
    """The host PID of `unshare --fork`'s child, which is PID 1 in its own PID namespace."""
    children = Path(f"/proc/{wrapper.pid}/task/{wrapper.pid}/children")
    wait_for(lambda: children.read_text().split(), timeout=30, what="unshare's child")
    return int(children.read_text().split()[0])


@pytest.mark.parametrize("as_pid_one", [False, True], ids=["plain", "pid1"])
def test_sigterm_stops_studio_train_and_the_run_is_final(home, as_pid_one):
    command = [sys.executable, "-m", "studio", "train", "recipes/demo.yaml",
               *fast_overrides(max_steps=5000, eval_every=10000), "--home", str(home)]
    if as_pid_one:
        probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"cannot start a process as PID 1 here: {probe.stderr.decode().strip()}")
        command = ["unshare", "--pid", "--fork", "--mount-proc", *command]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        target = _pid_one_child(proc) if as_pid_one else proc.pid
        runs = home / "runs"

        def training():
            # The run folder exists a moment before its first status.json (written atomically).
            status = next(runs.glob("*/status.json"), None) if runs.is_dir() else None
            try:
                return status is not None and (json.loads(status.read_text()).get("step") or 0) >= 2
            except FileNotFoundError:
                return False

        wait_for(training, what="training to begin")
        signal_sent = time.time()
        for _ in range(3):  # `timeout`, `docker stop` and impatient users send more than one
            os.kill(target, signal.SIGTERM)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    (folder,) = list((home / "runs").iterdir())
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "stopped", (status, err[-2000:])
    assert status["ended_at"] >= signal_sent
    assert (folder / "adapter" / "adapter_model.safetensors").is_file()
    assert proc.returncode == 1 and "Traceback" not in err, err[-2000:]
    assert out.count("Stopped after") == 1


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["plain", "sigint-ignored"])
def test_sigterm_stops_studio_ui_and_its_run(home, tmp_path, sigint_ignored):
    """SIGTERM stops the run (saved, `stopped`) and the UI process exits. Also where SIGINT is
    ignored, as a background job of a non-interactive shell (CI, nohup) inherits it: the exit
    must not depend on Ctrl-C's KeyboardInterrupt reaching the main thread."""
    import urllib.request

    from gradio_client import Client

    from helpers import free_port

    url = f"http://127.0.0.1:{free_port()}/"
    log = open(tmp_path / "ui.log", "w")
    disposition = signal.SIG_IGN if sigint_ignored else signal.SIG_DFL  # whatever pytest inherited
    proc = subprocess.Popen([sys.executable, "-m", "studio", "ui", "--home", str(home),
                             "--port", url.rsplit(":", 1)[1].strip("/")],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, disposition))
    try:
        def answers():
            assert proc.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_for(answers, what="the studio to answer")
        client = Client(url, verbose=False)
        started = client.predict(fast_overrides(max_steps=5000, eval_every=10000), api_name="/start_run")
        status_file = home / "runs" / started["run_id"] / "status.json"
        wait_for(lambda: (json.loads(status_file.read_text()).get("step") or 0) >= 2, what="training")
        proc.send_signal(signal.SIGTERM)
        proc.wait(300)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    status = json.loads(status_file.read_text())
    assert status["state"] == "stopped", (status, (tmp_path / "ui.log").read_text()[-3000:])
    assert (status_file.parent / "adapter" / "adapter_model.safetensors").is_file()


# --- `studio runs` marks runs of dead processes, PID reuse included ---------------------------

def test_studio_runs_marks_a_run_whose_pid_was_reused_crashed(home, capsys):
    me = process_identity()
    if me["pid_started"] is None:
        pytest.skip("no /proc here")
    run = RunStore(home).create(StudioConfig())
    run.update_status(state="running", **{**me, "pid_started": me["pid_started"] + 12345})
    assert main(["runs", "--json", "--home", str(home)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["state"] == "crashed" and run.status()["state"] == "crashed"
