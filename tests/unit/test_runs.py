import errno
import json
import time

import pytest

from studio import runs as runs_module
from studio.config import StudioConfig, apply_overrides
from studio.runs import RunStore, process_identity


def test_create_writes_config_and_status(home):
    store = RunStore(home)
    run = store.create(StudioConfig(name="My first/run!"))
    assert (run.path / "config.yaml").is_file()
    assert run.status()["state"] == "queued"
    assert run.config() == StudioConfig(name="My first/run!")
    assert "/" not in run.id and "!" not in run.id and " " not in run.id
    assert run.id.split("-", 2)[2].startswith("demo-en-lora-")  # <date>-<time>-<data>-<method>-<hex>
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
    live.update_status(state="running", **process_identity())
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


def test_a_reused_pid_does_not_keep_a_dead_run_alive(home):
    """A container restarts as PID 1 again: same PID, another process (another start time)."""
    store = RunStore(home)
    me = process_identity()
    if me["pid_started"] is None:
        pytest.skip("no /proc here: the start time cannot be read")
    reused = store.create(StudioConfig())
    reused.update_status(state="running", **{**me, "pid_started": me["pid_started"] - 1})
    rebooted = store.create(StudioConfig())
    rebooted.update_status(state="running", **{**me, "boot_id": "another-boot"})
    live = store.create(StudioConfig())
    live.update_status(state="running", **me)
    assert sorted(store.recover_crashed()) == sorted([reused.id, rebooted.id])
    assert reused.status()["state"] == "crashed" and rebooted.status()["state"] == "crashed"
    assert live.status()["state"] == "running"


def test_runs_are_named_after_their_data_and_method(home, tmp_path):
    store = RunStore(home)
    cfg = apply_overrides(StudioConfig(name="demo"), [f"data={tmp_path / 'My Set.jsonl'}", "method=qlora"])
    run = store.create(cfg)
    assert "-my-set-qlora-" in run.id
    (row,) = store.list()
    assert row["name"] == "my-set-qlora" and row["label"] == "demo"


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_create_on_a_full_disk_leaves_no_half_made_folder(home, monkeypatch):
    store = RunStore(home)
    monkeypatch.setattr(runs_module, "_write_json_atomic", _disk_full)
    with pytest.raises(OSError):
        store.create(StudioConfig())
    assert list(store.root.iterdir()) == []


def test_a_status_that_cannot_be_written_is_kept_in_memory(home, monkeypatch):
    store = RunStore(home)
    run = store.create(StudioConfig())
    run.update_status(state="running", step=3)
    monkeypatch.setattr(runs_module, "_write_json_atomic", _disk_full)
    with pytest.raises(OSError):
        run.update_status(state="failed", message="disk full")
    on_disk = json.loads((run.path / "status.json").read_text())
    assert on_disk["state"] == "running"
    assert run.status()["state"] == "failed" and run.progress()["state"] == "failed"
    assert store.get(run.id).status()["step"] == 3 and store.list()[0]["state"] == "failed"
    run.log("a log line on a full disk is dropped, not raised")
    monkeypatch.undo()
    run.update_status(message="space again")  # the next write that succeeds saves everything
    assert json.loads((run.path / "status.json").read_text())["state"] == "failed"


def test_recover_on_a_full_disk_warns_instead_of_failing(home, monkeypatch, capsys):
    store = RunStore(home)
    dead = store.create(StudioConfig())
    dead.update_status(state="running", pid=2**22 + 12345)
    monkeypatch.setattr(runs_module, "_write_json_atomic", _disk_full)
    assert store.recover_crashed() == [dead.id]
    assert dead.status()["state"] == "crashed"
    assert "warning:" in capsys.readouterr().err


def test_eta_counts_the_evaluations_still_to_come(home):
    run = RunStore(home).create(StudioConfig())
    now = time.time()
    # 10 s so far: 4 s training for 2 steps, 6 s for one evaluation; 3 more evaluations to come.
    run.update_status(state="running", training_started_at=now - 10, step=2, total_steps=8,
                      eval_seconds=6.0, evals_done=1, evals_total=4)
    p = run.progress(now=now)
    assert round(p["eta_s"]) == round(4 / 2 * 6 + 6 * 3)
