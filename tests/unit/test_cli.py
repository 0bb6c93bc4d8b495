"""The CLI's user errors: one line on stderr, exit code 2, no traceback, no run folder."""

import json
import subprocess
import sys

import pytest

from studio.cli import main


def run_cli(*args, home):
    return subprocess.run([sys.executable, "-m", "studio", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=120)


def test_runs_json_on_an_empty_home(home, capsys):
    assert main(["runs", "--json", "--home", str(home)]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize("args, fragment", [
    (["learning_rate=-0.001"], "Learning rate must be at least 0"),
    (["batch_size=0"], "Batch size must be at least 1"),
    (["model=/no/such/model"], "Model folder not found"),
    (["epochs=abc"], "Epochs needs a number"),
    (["recipes/missing.yaml"], "Recipe not found"),
])
def test_bad_train_input_is_one_line(home, capsys, args, fragment):
    assert main(["train", *args, "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1
    assert not list((home / "runs").glob("*"))


def test_model_needing_remote_code_is_refused(home, tmp_path, capsys):
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"model_type": "my_custom_arch", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}))
    assert main(["train", f"model={folder}", "--home", str(home)]) == 2
    assert "Trust remote code" in capsys.readouterr().err
    assert not list((home / "runs").glob("*"))


def test_help_works_for_every_command(home):
    for cmd in ([], ["train"], ["runs"], ["ui"]):
        out = run_cli(*cmd, "--help", home=home)
        assert out.returncode == 0 and "usage: studio" in out.stdout


def test_subprocess_error_has_no_traceback(home):
    out = run_cli("train", "batch_size=0", home=home)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == "error: Batch size must be at least 1; got 0."
