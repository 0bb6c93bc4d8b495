"""The repository runs as a Hugging Face Space unchanged, and demo mode keeps visitors apart.

Layout: README front matter (sdk gradio, the installed gradio's version, app_file), app.py
imports without launching, requirements.txt has a CPU torch and the project's dependencies.
Demo mode (studio.demo_mode) through the Workspace, no model loaded: when it is on, the /data
home, the step cap, export refusal, and two visitors who do not see each other's runs, uploads
or active job.
"""

import importlib
import re
import threading
from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from studio import demo_mode
from studio.config import StudioConfig, apply_overrides
from studio.demo_mode import DemoLimits, demo_limits, owner_key
from studio.errors import UserError
from studio.security import LaunchPolicy
from studio.workspace import Workspace


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must open with a YAML block (the Space configuration)"
    return yaml.safe_load(match.group(1))


def test_readme_front_matter_is_a_gradio_space_on_the_installed_gradio():
    import gradio

    meta = front_matter()
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == gradio.__version__
    assert (ROOT / meta["app_file"]).is_file()
    assert meta["colorFrom"] in {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert len(meta["short_description"]) <= 60  # the Hub refuses longer ones
    assert "# Finetune Studio" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_app_imports_without_launching_and_binds_where_spaces_expects(monkeypatch):
    import studio.ui.app

    monkeypatch.setattr(studio.ui.app, "launch", lambda *a, **k: pytest.fail("importing app.py launched"))
    monkeypatch.syspath_prepend(str(ROOT))  # Spaces runs app.py from the repository root
    app = importlib.import_module("app")
    assert app.space_arguments({}) == ["ui", "--host", "0.0.0.0", "--port", "7860"]
    assert app.space_arguments({"GRADIO_SERVER_PORT": "9000"})[-1] == "9000"
    from studio.cli import build_parser

    args = build_parser().parse_args(app.space_arguments({}))  # the CLI's own `ui` path takes them
    assert (args.command, args.host, args.port) == ("ui", "0.0.0.0", 7860)


def _requirement_names(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name = re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower()
            found[name] = line[len(name):].strip()
    return found


def test_requirements_have_a_cpu_torch_pinned_like_the_makefile_and_the_project_dependencies():
    import tomllib

    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    version = re.search(r"^TORCH_VERSION \?= (\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    required = _requirement_names(text.splitlines())
    assert required["torch"] == f"=={version}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name, spec in _requirement_names(project).items():
        if name != "torch":
            assert required.get(name) == spec, f"requirements.txt: {name}{spec} as in pyproject.toml"


@pytest.mark.parametrize("env, on", [
    ({}, False), ({"STUDIO_DEMO": "1"}, True), ({"SPACE_ID": "me/studio"}, True),
    ({"SYSTEM": "spaces", "SPACE_ID": "me/studio", "STUDIO_DEMO": "0"}, False),
])
def test_demo_mode_is_on_by_env_and_by_default_on_a_space(env, on):
    assert (demo_limits(env) is not None) == on


def test_demo_limits_from_env_and_bad_values_are_one_sentence():
    limits = demo_limits({"STUDIO_DEMO": "1", "STUDIO_DEMO_MAX_PARAMS": "1.5B", "STUDIO_DEMO_MAX_STEPS": "40",
                          "STUDIO_DEMO_MAX_UPLOAD": "5MB"})
    assert limits == DemoLimits(max_params=1_500_000_000, max_steps=40, max_upload_bytes=5 * 1024 ** 2)
    with pytest.raises(UserError, match="not a number"):
        demo_limits({"STUDIO_DEMO": "1", "STUDIO_DEMO_MAX_STEPS": "lots"})
    policy = LaunchPolicy.for_launch(max_upload="200MB", demo=limits)
    assert policy.max_upload_bytes == 5 * 1024 ** 2  # what Gradio's max_file_size gets at launch


def test_space_home_is_under_persistent_storage_when_there(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_mode, "DATA_ROOT", tmp_path / "data")
    space = {"SPACE_ID": "me/studio", "SYSTEM": "spaces"}
    assert demo_mode.persistent_home(space) is None  # no /data: the usual home, and a warning
    assert demo_mode.runs_lost_on_restart(tmp_path / "home", space)
    (tmp_path / "data").mkdir()
    assert demo_mode.persistent_home(space) == tmp_path / "data" / "finetune-studio"
    assert not demo_mode.runs_lost_on_restart(tmp_path / "data" / "finetune-studio", space)
    assert demo_mode.persistent_home({**space, "STUDIO_HOME": "/elsewhere"}) is None
    assert demo_mode.persistent_home({}) is None and not demo_mode.runs_lost_on_restart(tmp_path, {})


def test_cli_home_on_a_space_with_storage_is_under_data(tmp_path, monkeypatch, capsys):
    from studio.cli import main

    monkeypatch.setattr(demo_mode, "DATA_ROOT", tmp_path / "data")
    (tmp_path / "data").mkdir()
    monkeypatch.delenv("STUDIO_HOME", raising=False)
    monkeypatch.setenv("SPACE_ID", "me/studio")
    assert main(["runs"]) == 0
    assert (tmp_path / "data" / "finetune-studio" / "runs").is_dir()
    assert str(tmp_path / "data" / "finetune-studio") in capsys.readouterr().out


class Sessions:
    """Stands in for Gradio's request context: which session the 'current request' is."""

    def __init__(self, ws: Workspace):
        self.now = None
        ws.visitors.session_of = lambda: self.now

    def act(self, session):
        self.now = session
        return self


@pytest.fixture
def demo_ws(home):
    ws = Workspace(home, LaunchPolicy(demo=DemoLimits(max_steps=10)))
    return ws, Sessions(ws)


def test_step_cap_and_export_are_refused_by_the_backend(demo_ws):
    ws, _ = demo_ws
    with pytest.raises(UserError) as refused:
        ws.admit(apply_overrides(StudioConfig(), ["max_steps=11"]))
    assert refused.value.key == "train.max_steps" and "10" in str(refused.value)
    with pytest.raises(UserError, match="off in this demo"):
        ws.refuse_in_demo("export")
    from studio.ui.export_panel import export_run

    with pytest.raises(UserError, match="off in this demo"):
        export_run(ws, "any-run", "merge")
    Workspace(ws.home).refuse_in_demo("export")  # not in demo mode: allowed


def test_epochs_over_the_cap_are_refused_once_the_data_is_counted():
    cfg = apply_overrides(StudioConfig(), ["epochs=3", "batch_size=8"])
    with pytest.raises(UserError) as refused:
        demo_mode.check_steps(cfg, {"kept": 1000}, DemoLimits(max_steps=100))
    assert refused.value.key == "train.epochs"
    demo_mode.check_steps(cfg, {"kept": 100}, DemoLimits(max_steps=100))  # 3 × 9 batches: fine


def test_two_visitors_see_only_their_own_runs(demo_ws):
    ws, sessions = demo_ws
    cfg = StudioConfig()
    sessions.act("browser-a")
    token_a = ws.visitors.sign_in("browser-a", None)  # a new browser gets a token …
    assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", token_a)
    assert ws.visitors.sign_in("browser-a2", token_a) == token_a  # … and keeps it on the next visit
    run_a = ws.store.create(cfg)
    assert [r["id"] for r in ws.store.list()] == [run_a.id] and ws.has_run(run_a.id)

    sessions.act("script-b")  # a session that never signed in (a gradio_client script)
    assert ws.store.list() == [] and ws.store.latest() is None and ws.store.signature() == ()
    assert not ws.has_run(run_a.id)
    with pytest.raises(KeyError):
        ws.store.get(run_a.id)
    run_b = ws.store.create(cfg)
    assert [r["id"] for r in ws.store.list()] == [run_b.id]

    sessions.act("browser-a2")  # A again, from a second page of the same browser
    assert [r["id"] for r in ws.store.list()] == [run_a.id]
    assert ws.visitors.sign_in("browser-x", "short") != "short"  # a made-up token is replaced
    sessions.act(None)  # no request (the CLI, background work): every run
    assert {r["id"] for r in ws.store.list()} == {run_a.id, run_b.id}
    assert demo_mode.run_owner(run_a) == owner_key(token_a)


def test_uploads_and_run_folders_are_per_visitor(demo_ws, tmp_path, monkeypatch):
    ws, sessions = demo_ws
    gradio_cache = tmp_path / "gradio"
    (gradio_cache / "x").mkdir(parents=True)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(gradio_cache))
    upload = gradio_cache / "x" / "mine.jsonl"
    upload.write_text('{"text": "hi"}\n')
    sessions.act("a")
    saved = ws.save_upload(str(upload))
    assert ws.uploaded_datasets() == [saved]
    run_a = ws.store.create(StudioConfig())
    sessions.act("b")
    assert ws.uploaded_datasets() == []
    for path in (saved, str(run_a.path / "data")):
        with pytest.raises(UserError, match="outside the folders"):
            ws.resolve_user_path(path, "data")
    with pytest.raises(UserError):
        ws.resolve_user_path(str(run_a.path / "adapter"), "model")
    sessions.act("a")
    assert ws.resolve_user_path(saved, "data") == saved


def test_uploads_over_the_cap_are_refused_by_the_backend(home, tmp_path, monkeypatch):
    ws = Workspace(home, LaunchPolicy.for_launch(demo=DemoLimits(max_upload_bytes=1024)))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    (tmp_path / "gradio").mkdir()
    big = tmp_path / "gradio" / "big.jsonl"
    big.write_text('{"text": "' + "x" * 2000 + '"}\n')
    with pytest.raises(UserError, match="upload limit"):
        ws.save_upload(str(big))


def test_another_visitors_active_run_cannot_be_seen_or_stopped(demo_ws):
    ws, sessions = demo_ws
    release = threading.Event()
    sessions.act("a")
    run_a = ws.jobs.submit(ws.store.create(StudioConfig()), lambda run, stop: release.wait(60) and {})
    try:
        sessions.act("b")
        assert ws.jobs.active_run() is None and ws.jobs.stop() is None
        with pytest.raises(UserError, match="Another visitor"):
            ws.jobs.submit(ws.store.create(StudioConfig()), lambda run, stop: {})
        assert not ws.jobs._stop.is_set()
        sessions.act("a")
        assert ws.jobs.active_run().id == run_a.id
    finally:
        release.set()
        ws.jobs.wait(30)


def test_app_py_launches_like_studio_ui_with_the_spaces_settings(tmp_path, monkeypatch):
    """`python app.py` on a Space: the CLI's `ui` path, login from STUDIO_AUTH, demo mode on,
    home in persistent storage, bound where the Space's proxy reaches it."""
    import studio.jobs
    import studio.ui.app

    launched = {}
    monkeypatch.setattr(studio.ui.app, "launch", lambda **kw: launched.update(kw))
    monkeypatch.setattr(studio.jobs, "stop_jobs_on_sigterm", lambda *a, **k: None)
    monkeypatch.setattr(demo_mode, "DATA_ROOT", tmp_path / "data")
    (tmp_path / "data").mkdir()
    monkeypatch.delenv("STUDIO_HOME", raising=False)
    monkeypatch.delenv("STUDIO_DEMO", raising=False)
    for name, value in {"SPACE_ID": "me/studio", "SYSTEM": "spaces", "STUDIO_AUTH": "me:secret",
                        "GRADIO_SERVER_PORT": "7861"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(ROOT))
    from studio.cli import main

    assert main(importlib.import_module("app").space_arguments()) == 0
    policy = launched["policy"]
    assert (policy.host, launched["port"], policy.auth) == ("0.0.0.0", 7861, ("me", "secret"))
    assert policy.demo == DemoLimits() and policy.max_upload_bytes == DemoLimits().max_upload_bytes
    assert launched["home"] == tmp_path / "data" / "finetune-studio"


def test_another_visitors_sweep_is_neither_shown_nor_stopped(demo_ws):
    """A sweep records who started it; the Train tab's sweep panel shows and stops only one's own."""
    import json

    from studio.sweep import sweeps_dir
    from studio.ui.sweep_panel import current_record

    ws, sessions = demo_ws
    sessions.act("browser-a")
    ws.visitors.sign_in("browser-a", None)
    owner_a = ws.owner()
    record = {"id": "20260101-000000-lr-abcd", "param": "lr", "state": "completed", "trials": [], "owner": owner_a}
    sweeps_dir(ws.home).mkdir(parents=True, exist_ok=True)
    (sweeps_dir(ws.home) / f"{record['id']}.json").write_text(json.dumps(record))
    assert current_record(ws, record["id"])["id"] == record["id"] and ws.sees(record)

    sessions.act("script-b")
    assert ws.owner() != owner_a and not ws.sees(record)
    assert current_record(ws, record["id"]) is None and current_record(ws) is None
    sessions.act(None)  # the CLI and background work see every sweep
    assert ws.owner() is None and current_record(ws)["id"] == record["id"]
    assert Workspace(ws.home).sees(record)  # not in demo mode: one person, every sweep
