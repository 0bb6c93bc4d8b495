import json
import os
import time

from studio.config import StudioConfig
from studio.runs import RunStore


def test_create_writes_config_and_status(home):
    store = RunStore(home)
    run = store.create(StudioConfig(name="My first/run!"))
    assert (run.path / "config.yaml").is_file()
    assert run.status()["state"] == "queued"
    assert run.config() == StudioConfig(name="My first/run!")
    assert "/" not in run.id and "!" not in run.id and run.id.endswith(run.id[-4:])
    assert store.get(run.id).path == run.path


def test_get_refuses_path_tricks(home):
    store = RunStore(home)
    for bad in ["../x", "", "a/b", ".hidden"]:
        try:
            store.get(bad)
            raise AssertionError(bad)
        except KeyError:
            pass


def test_metrics_offsets_and_torn_last_line(home):
    run = RunStore(home).create(StudioConfig())
    run.append_metric({"step": 1, "loss": 2.0})
    run.append_metric({"step": 2, "loss": float("nan")})
    with open(run.metrics_path, "a") as fh:
        fh.write('{"step": 3, "lo')  # a writer in the middle of a line
    events, offset = run.read_metrics_from(0)
    assert [e["step"] for e in events] == [1, 2]
    assert events[1]["loss"] == "nan"
    with open(run.metrics_path, "a") as fh:
        fh.write('ss": 1.5}\n')
    more, offset2 = run.read_metrics_from(offset)
    assert more == [{"step": 3, "loss": 1.5}] and offset2 > offset
    assert run.read_metrics_from(offset2) == ([], offset2)


def test_progress_eta(home):
    run = RunStore(home).create(StudioConfig())
    now = time.time()
    run.update_status(state="running", training_started_at=now - 10, step=5, total_steps=20)
    p = run.progress(now=now)
    assert p["fraction"] == 0.25 and round(p["eta_s"]) == 30 and round(p["elapsed_s"]) == 10


def test_recover_marks_dead_runs_crashed_and_keeps_live_ones(home):
    store = RunStore(home)
    dead = store.create(StudioConfig())
    dead.update_status(state="running", pid=2**22 + 12345)
    live = store.create(StudioConfig())
    live.update_status(state="running", pid=os.getpid())
    done = store.create(StudioConfig())
    done.update_status(state="completed")
    (dead.path / "checkpoints").mkdir()
    assert store.recover_crashed() == [dead.id]
    assert dead.status()["state"] == "crashed" and (dead.path / "checkpoints").is_dir()
    assert live.status()["state"] == "running" and done.status()["state"] == "completed"


def test_list_summarises_runs(home):
    store = RunStore(home)
    run = store.create(StudioConfig())
    run.append_metric({"step": 1, "loss": 3.0})
    run.append_metric({"step": 2, "loss": 2.5})
    run.update_status(state="completed", started_at=100.0, ended_at=112.0)
    (row,) = store.list()
    assert row["final_loss"] == 2.5 and row["method"] == "lora" and row["seconds"] == 12.0
    json.dumps(row)


def test_signature_changes_with_status(home):
    store = RunStore(home)
    empty = store.signature()
    run = store.create(StudioConfig())
    first = store.signature()
    assert first != empty
    time.sleep(0.01)
    run.update_status(state="running")
    assert store.signature() != first


def test_finished_runs_report_their_recorded_final_loss(home):
    store = RunStore(home)
    run = store.create(StudioConfig())
    run.append_metric({"step": 1, "loss": 3.0})
    run.update_status(state="completed", final_loss=1.25)
    assert store.list()[0]["final_loss"] == 1.25
