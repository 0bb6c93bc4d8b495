"""Follow-ups to runs compared and demo mode, no model loaded: a rename shows in every run list as
text, demo mode keeps one process per run, where a run's tracker runs live (Runs tab and `studio
runs --json`), lists let go of a deleted run, and A/B votes on another visitor's runs stay hidden."""

import json
import time

import pytest

from studio import compare
from studio.arena import VoteStore, run_ids_in, visible_votes
from studio.cli import main
from studio.config import StudioConfig, apply_overrides
from studio.demo_mode import DemoLimits
from studio.errors import UserError, explain
from studio.i18n import t
from studio.security import LaunchPolicy
from studio.trackers import write_records
from studio.ui import arena_tab, chat_tab, evaluate_tab, runs_compare
from studio.workspace import Workspace

MARKUP = "**bold** <img src=x onerror=alert(1)> [link](javascript:x)"


def finished(store, name: str = "", **settings):
    """A completed run with an adapter folder (what Chat, Evaluate and the arena list)."""
    overrides = [f"{k}={v}" for k, v in settings.items()] + ([f"name={name}"] if name else [])
    run = store.create(apply_overrides(StudioConfig(), overrides))
    (run.path / "adapter").mkdir()
    run.append_metric({"t": time.time(), "step": 1, "loss": 1.5})
    run.update_status(state="completed", phase="completed", final_loss=1.5, ended_at=time.time())
    return run


# --- labels ---------------------------------------------------------------------------------------

def test_a_rename_is_the_label_of_every_run_list_and_stays_plain_text(home):
    ws = Workspace(home)
    run = finished(ws.store, name="from the form")
    assert run.summary()["label"] == "from the form"  # no rename: the config's name
    compare.rename_run(run, MARKUP)
    assert run.summary()["label"] == MARKUP == compare.run_label(run)
    shown = {
        "chat": dict((v, k) for k, v in chat_tab.adapter_choices(ws, "en"))[run.id],
        "arena": dict((v, k) for k, v in arena_tab.model_choices(ws, "en"))["run:" + run.id],
        "evaluate": dict((v, k) for k, v in evaluate_tab.run_choices(ws, "en"))[run.id],
        "runs": dict((v, k) for k, v in runs_compare.run_choices(ws, "en"))[run.id],
    }
    for where, text in shown.items():  # the label exactly as typed (a Dropdown shows names as text)
        assert text.startswith(run.id) and text.endswith(" · " + MARKUP), where
    assert ws.store.list()[0]["label"] == MARKUP  # /list_runs and `studio runs --json` too


def test_a_label_edited_by_hand_is_one_printable_line(home):
    run = finished(Workspace(home).store)
    (run.path / "label.txt").write_text("two\nlines\x1b[31m red\x07 " + "x" * 200, encoding="utf-8")
    label = run.summary()["label"]
    assert label.startswith("two lines [31m red ") and "\n" not in label and "\x1b" not in label
    assert len(label) == 80 and label == compare.run_label(run)
    (run.path / "label.txt").write_bytes(b"\xff\xfe broken")  # not UTF-8: the config's name instead
    assert run.summary()["label"] == ""


# --- demo mode: one process per run --------------------------------------------------------------

def test_demo_mode_refuses_several_processes_next_to_the_field(home):
    ws = Workspace(home, LaunchPolicy(demo=DemoLimits(max_steps=10)))
    cfg = apply_overrides(StudioConfig(), ["processes=2", "max_steps=5"])
    with pytest.raises(UserError) as refused:
        ws.admit(cfg)
    assert refused.value.key == "train.processes"
    msg = explain(refused.value)
    assert msg.render("en") == t("followups.demo_processes", "en", n=2) and "2 processes" in msg.render("en")
    assert msg.render("zh") == t("followups.demo_processes", "zh", n=2) != msg.render("en")
    with pytest.raises(UserError) as again:  # the job manager's own check (sweeps, every start)
        ws.jobs.check(cfg)
    assert again.value.key == "train.processes"
    assert not list((home / "runs").iterdir())  # refused before any run folder exists
    one = apply_overrides(StudioConfig(), ["processes=1", "max_steps=5"])
    from studio.demo_mode import check_processes

    check_processes(one)  # one process is fine
    Workspace(home / "other").admit(apply_overrides(StudioConfig(), ["processes=2"]))  # not a demo: allowed


# --- where the tracker runs live -----------------------------------------------------------------

def test_tracker_locations_in_the_comparison_and_runs_json(home, capsys):
    ws = Workspace(home)
    a, b = finished(ws.store), finished(ws.store, learning_rate=1e-3)
    records = [{"name": "tensorboard", "location": str(a.path / "tracker" / "tensorboard"), "run": a.id},
               {"name": "mlflow", "location": "http://mlflow.local:5000/<b>", "experiment": "x", "run": a.id}]
    write_records(a, records)
    frame = runs_compare.results_frame(ws, [a, b], compare.display_names([a, b]), "en")
    row = frame[frame.iloc[:, 0] == t("followups.row_trackers", "en")]
    assert len(row) == 1
    assert row.iloc[0, 1] == f"tensorboard: {a.path / 'tracker' / 'tensorboard'}; mlflow: http://mlflow.local:5000/<b>"
    assert row.iloc[0, 2] == "-"  # b reported to no tracker
    zh = runs_compare.results_frame(ws, [a, b], compare.display_names([a, b]), "zh")
    assert t("followups.row_trackers", "zh") in list(zh.iloc[:, 0])

    assert main(["runs", "--json", "--home", str(home)]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[a.id]["trackers"] == records and rows[b.id]["trackers"] == []
    assert main(["runs", "compare", a.id, b.id, "--json", "--home", str(home)]) == 0
    assert json.loads(capsys.readouterr().out)["trackers"] == {a.id: records, b.id: []}


# --- lists let go of a deleted run ---------------------------------------------------------------

def test_redrawn_lists_unchoose_only_deleted_runs(home):
    ws = Workspace(home)
    gone, kept = finished(ws.store), finished(ws.store)
    compare.delete_run(ws.store, gone.id)
    update = evaluate_tab.runs_update(ws, "en", [gone.id, kept.id])
    assert update["value"] == [kept.id] and [v for _, v in update["choices"]] == [kept.id]
    assert "value" not in evaluate_tab.runs_update(ws, "en", [kept.id])  # nothing gone: the value is not sent
    assert arena_tab.kept_model(ws, "run:" + gone.id) is None
    assert arena_tab.kept_model(ws, f"mix:run:{kept.id}@0.5+run:{gone.id}@0.5") is None
    assert arena_tab.kept_model(ws, "run:" + kept.id) == "run:" + kept.id
    assert arena_tab.kept_model(ws, "demo") == "demo"
    choices = arena_tab.model_choices(ws, "en")
    assert arena_tab.kept(choices, "run:" + gone.id)["value"] is None
    assert "value" not in arena_tab.kept(choices, "run:" + kept.id)


# --- demo mode: votes on another visitor's runs stay hidden --------------------------------------

class Sessions:
    """Stands in for Gradio's request context: which session the 'current request' is."""

    def __init__(self, ws):
        self.now = None
        ws.visitors.session_of = lambda: self.now


def test_votes_and_win_rates_show_only_the_visitors_own_runs(home):
    ws = Workspace(home, LaunchPolicy(demo=DemoLimits(max_steps=10)))
    sessions = Sessions(ws)
    sessions.now = "visitor-a"
    mine = finished(ws.store)
    sessions.now = "visitor-b"
    theirs = finished(ws.store)
    votes = VoteStore(home)
    votes.add(a="run:" + mine.id, b="demo", winner="a", prompt="a's prompt")
    votes.add(a="run:" + theirs.id, b="demo", winner="b", prompt="b's secret prompt")
    votes.add(a=f"mix:run:{mine.id}@0.5+run:{theirs.id}@0.5", b="demo", winner="a")
    votes.add(a="run:" + theirs.id, b="run:" + mine.id, winner="a")
    votes.add(a="demo", b="HuggingFaceTB/SmolLM2-135M", winner="tie")
    assert run_ids_in(f"mix:run:{mine.id}@0.5+run:{theirs.id}@0.5") == [mine.id, theirs.id]

    sessions.now = "visitor-a"
    seen = visible_votes(votes.all(), ws.store)
    assert [v.get("prompt") for v in seen] == ["a's prompt", ""]
    wins, ratings, note = arena_tab.tables(ws, "en")
    table = wins["value"].to_string() + ratings["value"].to_string()
    assert mine.id in table and theirs.id not in table and "mix:" not in table
    assert note == t("chatui.votes_count", "en", n=2)
    rows = compare.vote_rows(home, [mine], ws.store)
    assert (rows[0]["votes"], rows[0]["wins"]) == (1, 1)  # the vote against B's run is not counted
    frame = runs_compare.results_frame(ws, [mine], compare.display_names([mine]), "en").to_string()
    assert theirs.id not in frame

    sessions.now = "visitor-b"
    table = arena_tab.tables(ws, "en")[0]["value"].to_string()
    assert theirs.id in table and mine.id not in table

    sessions.now = None  # the CLI and background work see every vote
    assert len(visible_votes(votes.all(), ws.store)) == 5
    assert compare.vote_rows(home, [mine])[0]["votes"] == 2  # with the one against B's run
    compare.delete_run(ws.store, theirs.id)
    sessions.now = "visitor-b"  # a deleted run's votes are nobody's
    assert [v["a"] for v in visible_votes(votes.all(), ws.store)] == ["demo"]
