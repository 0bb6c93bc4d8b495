"""Runs compared (studio.compare, `studio runs compare|export|rename|delete`) on two finished runs."""

import json
import time

import pytest
import yaml

from studio import compare
from studio.cli import main
from studio.config import StudioConfig, apply_overrides, load_recipe, validate
from studio.errors import UserError
from studio.runs import RunStore


def finished_run(store, losses, evals=(), **settings):
    """A completed run folder with these train losses (steps 1…) and eval losses (every 2nd step)."""
    run = store.create(apply_overrides(StudioConfig(), [f"{k}={v}" for k, v in settings.items()]))
    for step, loss in enumerate(losses, 1):
        run.append_metric({"t": time.time(), "step": step, "loss": loss, "eval_loss": None})
    for i, value in enumerate(evals, 1):
        run.append_metric({"t": time.time(), "step": 2 * i, "loss": None, "eval_loss": value})
    run.update_status(state="completed", phase="completed", final_loss=losses[-1], ended_at=time.time())
    return run


def save_scores(run, tuned_rouge, base_rouge=0.05):
    folder = run.path / "eval" / "k1"
    folder.mkdir(parents=True)
    (folder / "scores.json").write_text(json.dumps({
        "role": "test", "data": "test", "data_label": "held-out test split", "created": time.time(),
        "base": {"rougeL": base_rouge, "bleu": 1.0}, "tuned": {"rougeL": tuned_rouge, "bleu": 9.0}}))


@pytest.fixture
def two(home):
    store = RunStore(home)
    a = finished_run(store, [2.0, 1.5, 1.2, 1.0], evals=[1.6, 1.3], learning_rate=2e-4)
    b = finished_run(store, [2.0, 1.2, 0.9, float("nan")], evals=[1.4], learning_rate=1e-3, lora_r=8)
    return store, a, b


def test_curves_overlay_train_and_eval_loss_of_both_runs(two):
    store, a, b = two
    runs = compare.pick_runs(store, [a.id, b.id, a.id])  # each run once, in the order given
    assert [r.id for r in runs] == [a.id, b.id]
    rows = compare.curve_rows(runs)
    assert {(r["run"], r["series"]) for r in rows} == {(a.id, "loss"), (a.id, "eval_loss"),
                                                        (b.id, "loss"), (b.id, "eval_loss")}
    assert [r["value"] for r in rows if r["run"] == a.id and r["series"] == "eval_loss"] == [1.6, 1.3]
    assert [r["step"] for r in rows if r["run"] == b.id and r["series"] == "loss"] == [1, 2, 3]  # NaN not drawn
    assert compare.final_losses(b) == {"loss": 0.9, "eval_loss": 1.4}


def test_config_diff_lists_only_settings_that_differ(two):
    store, a, b = two
    diff = compare.config_diff([a, b])
    assert diff == [{"setting": "method.lora_r", "values": [16, 8]},
                    {"setting": "train.learning_rate", "values": [2e-4, 1e-3]}]
    assert compare.config_diff([a, a]) == []


def test_scores_and_win_rates_side_by_side(two):
    from studio.arena import VoteStore

    store, a, b = two
    assert compare.score_rows([a, b]) == []  # neither evaluated yet
    save_scores(a, 0.7)
    rows = {r["metric"]: r["values"] for r in compare.score_rows([a, b])}
    assert rows["rougeL"][0] == {"base": 0.05, "tuned": 0.7, "data": "held-out test split"}
    assert rows["rougeL"][1] is None  # b was never evaluated
    votes = VoteStore(store.root.parent)
    votes.add(a=f"run:{a.id}", b=f"run:{b.id}", winner="a")
    votes.add(a=f"run:{b.id}", b=f"run:{a.id}", winner="a")
    votes.add(a=f"run:{a.id}", b="demo", winner="a")
    votes.add(a=f"run:{a.id}", b="demo", winner="tie")
    va, vb = compare.vote_rows(store.root.parent, [a, b])
    assert (va["votes"], va["wins"], va["losses"], va["ties"]) == (4, 2, 1, 1) and va["win_rate"] == 0.5
    assert va["head_to_head"][b.id] == {"votes": 2, "wins": 1, "win_rate": 0.5}
    assert (vb["votes"], vb["wins"], vb["win_rate"]) == (2, 1, 0.5)


def test_export_is_a_recipe_studio_train_accepts(two, tmp_path):
    store, a, b = two
    path = tmp_path / "exported.yaml"
    text, command = compare.export_recipe(b, path, home=store.root.parent)
    assert text.splitlines()[0] == f"# {command}"
    assert command == f"studio train {path} --home {store.root.parent}"
    path.write_text(text)
    cfg = load_recipe(path)  # what `studio train FILE` reads
    assert cfg == b.config() and cfg.train.learning_rate == 1e-3 and cfg.method.lora_r == 8
    assert validate(cfg) == {}


def test_rename_is_a_label_and_the_id_stays(two):
    store, a, _ = two
    assert compare.rename_run(a, "  fast\nlr  ") == "fast lr"
    assert store.get(a.id).path == a.path and compare.run_label(a) == "fast lr"
    assert compare.display_names([a])[a.id] == "fast lr"
    with pytest.raises(UserError):
        compare.rename_run(a, "x" * 200)
    assert compare.rename_run(a, "") == "" and compare.run_label(a) == ""


def test_same_labels_stay_apart(two):
    _, a, b = two
    compare.rename_run(a, "same")
    compare.rename_run(b, "same")
    names = compare.display_names([a, b])
    assert len(set(names.values())) == 2 and all(n.startswith("same") for n in names.values())


def test_delete_refuses_active_runs_and_path_tricks(two, home):
    store, a, b = two
    active = store.create(StudioConfig())
    active.update_status(state="running")
    with pytest.raises(UserError, match="stop it"):
        compare.delete_run(store, active.id)
    assert active.path.is_dir()
    outside = home / "x"
    outside.mkdir()
    (outside / "status.json").write_text("{}")
    for bad in ["../x", "", "a/b", ".hidden", "no-such-run"]:
        with pytest.raises(UserError):
            compare.delete_run(store, bad)
    assert outside.is_dir()

    class Busy:  # the job manager evaluating run a
        def active_run(self):
            return type("EvalJob", (), {"id": f"{a.id}/eval", "of_run": a})()

    with pytest.raises(UserError, match="being worked on"):
        compare.delete_run(store, a.id, Busy())
    assert compare.delete_run(store, a.id) == a.id
    assert not a.path.exists() and b.path.is_dir()
    with pytest.raises(UserError):
        compare.pick_runs(store, [a.id])


def test_too_many_runs_is_one_sentence(two):
    store, a, _ = two
    with pytest.raises(UserError, match="at most"):
        compare.pick_runs(store, [f"{a.id}{i}" for i in range(compare.MAX_RUNS + 1)])


# --- the CLI ------------------------------------------------------------------------------------

def test_cli_compare_two_runs(two, capsys):
    store, a, b = two
    home = str(store.root.parent)
    assert main(["runs", "compare", a.id, b.id, "--home", home]) == 0
    out = capsys.readouterr().out
    assert "train.learning_rate" in out and "method.lora_r" in out and "0.9" in out
    assert main(["runs", "compare", a.id, b.id, "--json", "--home", home]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runs"] == [a.id, b.id] and len(data["config_diff"]) == 2
    assert main(["runs", "compare", a.id, "--home", home]) == 2
    assert "at least two" in capsys.readouterr().err


def test_cli_export_prints_or_writes_a_recipe(two, tmp_path, capsys):
    store, a, _ = two
    home = str(store.root.parent)
    assert main(["runs", "export", a.id, "--home", home]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"# studio train {a.id}.yaml --home {home}\n")
    out = tmp_path / "sub" / "a.yaml"
    assert main(["runs", "export", a.id, "--out", str(out), "--home", home]) == 0
    line = capsys.readouterr().out
    assert str(out) in line and f"studio train {out} --home {home}" in line and line.count("\n") == 1
    assert load_recipe(out) == a.config()
    assert yaml.safe_load(printed) == yaml.safe_load(out.read_text())


def test_cli_rename_and_list_show_the_label(two, capsys):
    store, a, _ = two
    home = str(store.root.parent)
    assert main(["runs", "rename", a.id, "baseline run", "--home", home]) == 0
    assert "baseline run" in capsys.readouterr().out
    assert main(["runs", "--home", home]) == 0
    assert "· baseline run" in capsys.readouterr().out
    assert main(["runs", "--json", "--home", home]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[a.id]["label"] == "baseline run"


def test_cli_delete_needs_yes_and_refuses_active_runs_and_bad_ids(two, capsys):
    store, a, b = two
    home = str(store.root.parent)
    assert main(["runs", "delete", a.id, "--home", home]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--yes" in err and err.count("\n") == 1 and a.path.is_dir()
    for bad in ["../x", "../../etc", "no-such-run"]:
        assert main(["runs", "delete", bad, "--yes", "--home", home]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1
    active = store.create(StudioConfig())  # queued by this (living) process: active
    assert main(["runs", "delete", active.id, "--yes", "--home", home]) == 2
    assert "stop it" in capsys.readouterr().err and active.path.is_dir()
    assert main(["runs", "delete", a.id, "--yes", "--home", home]) == 0
    assert a.id in capsys.readouterr().out and not a.path.exists() and b.path.is_dir()
