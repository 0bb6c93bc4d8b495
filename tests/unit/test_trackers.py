"""Experiment trackers (studio.trackers): the setting, its validation, and where each tracker is pointed."""

import importlib.util
import json
import os

import pytest

from helpers import ROOT
from studio import trackers
from studio.cli import main
from studio.config import StudioConfig, apply_overrides, from_command_line, validate
from studio.i18n import render
from studio.runs import RunStore

TRACKER_ENV = ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "MLFLOW_TRACKING_URI",
               "MLFLOW_EXPERIMENT_NAME", "TENSORBOARD_LOGGING_DIR", "TRACKIO_DIR", "TRACKIO_PROJECT",
               "TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in TRACKER_ENV:
        monkeypatch.delenv(key, raising=False)


def hide(monkeypatch, *modules):
    """Make importlib say these modules are not installed (as on a machine without them)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec",
                        lambda name, *a, **k: None if name in modules else real(name, *a, **k))


def a_run(tmp_path, report_to="none"):
    return RunStore(tmp_path / "home").create(apply_overrides(StudioConfig(), [f"report_to={report_to}"]))


def test_default_reports_to_none_and_names_the_run(tmp_path):
    run = a_run(tmp_path)
    assert StudioConfig().train.report_to == "none"
    assert trackers.training_kwargs(run.config(), run) == {"report_to": "none", "run_name": run.id}
    assert "train.report_to" not in validate(StudioConfig())
    with trackers.reporting(run.config(), run) as records:
        assert records == []
    assert not (run.path / "trackers.json").exists()


def test_report_to_is_a_comma_list():
    assert trackers.parse_report_to(" TensorBoard, mlflow,tensorboard ") == ["tensorboard", "mlflow"]
    assert trackers.parse_report_to("none") == trackers.parse_report_to("") == []


def test_uninstalled_tracker_is_refused_with_how_to_install(monkeypatch):
    hide(monkeypatch, "tensorboard", "tensorboardX")
    problems = validate(apply_overrides(StudioConfig(), ["report_to=tensorboard"]))
    text = render(problems["train.report_to"], "en")
    assert "tensorboard is not installed" in text and "pip install tensorboard" in text
    assert "pip install tensorboard" in render(problems["train.report_to"], "zh")
    assert "tensorboard" not in trackers.tracker_choices()


def test_unknown_tracker_is_refused():
    problems = validate(apply_overrides(StudioConfig(), ["report_to=tensorbored"]))
    assert "tensorbored" in render(problems["train.report_to"], "en")


def test_installed_tracker_passes_and_is_offered(monkeypatch):
    monkeypatch.setattr(trackers, "is_installed", lambda name: name in ("tensorboard", "mlflow"))
    assert trackers.tracker_choices() == ["none", "tensorboard", "mlflow"]
    assert "train.report_to" not in validate(apply_overrides(StudioConfig(), ["report_to=tensorboard,mlflow"]))


def test_cli_override_of_an_uninstalled_tracker_is_one_line(home, capsys, monkeypatch):
    hide(monkeypatch, "wandb")
    assert main(["train", str(ROOT / "recipes" / "demo.yaml"), "train.report_to=wandb", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pip install wandb" in err and err.count("\n") == 1
    assert not list((home / "runs").glob("*"))


def test_command_line_override_sets_the_trackers(monkeypatch):
    monkeypatch.setattr(trackers, "is_installed", lambda name: name == "tensorboard")
    cfg = from_command_line([str(ROOT / "recipes" / "demo.yaml"), "train.report_to=TensorBoard"])
    assert cfg.train.report_to == "TensorBoard" and "train.report_to" not in validate(cfg)
    assert from_command_line(["report_to=none"]).train.report_to == "none"


def test_wandb_is_offline_in_the_run_folder_unless_told_otherwise(tmp_path, monkeypatch):
    run = a_run(tmp_path)
    env, records = trackers.plan(["wandb"], run)
    assert env["WANDB_MODE"] == "offline" and env["WANDB_DIR"] == str(run.path / "tracker" / "wandb")
    assert env["WANDB_PROJECT"] == trackers.PROJECT
    assert records == [{"name": "wandb", "location": env["WANDB_DIR"], "mode": "offline",
                        "project": trackers.PROJECT, "run": run.id}]
    monkeypatch.setenv("WANDB_API_KEY", "secret")
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    env, records = trackers.plan(["wandb"], run)
    assert env["WANDB_MODE"] == "online" and env["WANDB_PROJECT"] == "mine"
    assert records[0]["location"] == "wandb project mine" and "secret" not in json.dumps(records)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert trackers.plan(["wandb"], run)[0]["WANDB_MODE"] == "disabled"


def test_mlflow_uses_a_file_store_in_the_run_folder_unless_a_server_is_set(tmp_path, monkeypatch):
    run = a_run(tmp_path)
    env, records = trackers.plan(["mlflow"], run)
    assert env["MLFLOW_TRACKING_URI"] == (run.path / "tracker" / "mlflow").resolve().as_uri()
    assert env["MLFLOW_TRACKING_URI"].startswith("file:")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://me:pw@mlflow.example/api?token=abc")
    env, records = trackers.plan(["mlflow"], run)
    assert env["MLFLOW_TRACKING_URI"] == "https://me:pw@mlflow.example/api?token=abc"  # the callback needs it whole
    assert records[0]["location"] == "https://mlflow.example/api"  # the record keeps no secret


def test_trackio_stays_local_under_the_home(tmp_path, monkeypatch):
    run = a_run(tmp_path, "none")
    monkeypatch.delitem(trackers.sys.modules, "trackio.utils", raising=False)
    env, records = trackers.plan(["trackio"], run)
    assert env["TRACKIO_DIR"] == str(tmp_path / "home" / "trackio")
    assert records[0]["location"] == env["TRACKIO_DIR"] and records[0]["run"] == run.id
    monkeypatch.setattr(trackers, "is_installed", lambda name: True)
    kwargs = trackers.training_kwargs(apply_overrides(StudioConfig(), ["report_to=trackio"]), run)
    assert kwargs["report_to"] == ["trackio"] and kwargs["trackio_static_space_id"] is False  # no Hub sync


def test_reporting_sets_the_environment_for_the_run_only_and_records_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", "/elsewhere")
    run = a_run(tmp_path, "tensorboard")
    folder = str(run.path / "tracker" / "tensorboard")
    with trackers.reporting(run.config(), run):
        assert os.environ["TENSORBOARD_LOGGING_DIR"] == folder
        assert trackers.read_records(run) == [{"name": "tensorboard", "location": folder, "run": run.id}]
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == "/elsewhere"
    assert "tracker: tensorboard -> " + folder in (run.path / "logs.txt").read_text()


def test_train_form_offers_installed_trackers_and_accepts_typed_ones():
    from studio.ui.train_tab import GROUP_FIELDS, GROUPS

    assert "train.report_to" in GROUPS["ui.train.group.logging"]
    assert GROUP_FIELDS["train.report_to"]["choices"][0] == "none"
    assert GROUP_FIELDS["train.report_to"]["allow_custom_value"] is True
