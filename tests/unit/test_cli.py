"""The CLI's user errors: one line on stderr, exit code 2, no traceback, no run folder."""

import json
import os
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
    # beyond what the libraries take: refused here, not as a failed run (numpy seeds are 32-bit)
    (["seed=4294967296"], "Seed must be at most 4294967295"),
    (["max_steps=1e99"], "Max steps must be at most 100000000; got 1e+99."),  # not 100 digits
    (["grad_accum=5000"], "Gradient accumulation must be at most 4096"),
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


def wait_for_page(url: str, proc, timeout: float = 120) -> bool:
    import time
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            time.sleep(0.3)
    return False


def test_studio_with_port_and_host_launches_the_ui(home, tmp_path):
    """`studio --port N --host H` is `studio ui --port N --host H` (it used to be 'invalid choice')."""
    from helpers import free_port

    port = free_port()
    log = open(tmp_path / "ui.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "studio", "--port", str(port), "--host", "127.0.0.1",
                             "--home", str(home)], stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for_page(f"http://127.0.0.1:{port}/", proc), (tmp_path / "ui.log").read_text()[-2000:]
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.mark.parametrize("args, fragment", [
    (["--port", "abc"], "--port"),
    (["--port", "70000"], "70000 is not a port number"),  # was a socket OverflowError traceback
    (["--host", "999.1.1.1"], "'999.1.1.1' is not a name or address"),  # was uvicorn's line + "no empty port"
    (["ui", "--bogus"], "--bogus"),
    (["train", "--bogus"], "--bogus"),
    (["nonsense"], "nonsense"),
    (["--max-upload", "lots"], "'lots' is not a size"),
    (["--auth", "no-colon"], "user:password"),
    (["--model-dir", "/no/such/folder"], "/no/such/folder"),
])
def test_bad_flags_are_one_line_and_exit_2(home, args, fragment):
    out = run_cli(*args, home=home)
    assert out.returncode == 2, out
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    assert fragment in out.stderr and "Traceback" not in out.stderr


def test_cli_errors_follow_the_language(home):
    out = subprocess.run([sys.executable, "-m", "studio", "--auth", "x", "--home", str(home)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "STUDIO_LANG": "zh"})
    assert out.returncode == 2 and out.stderr.startswith("错误：") and "用户名:密码" in out.stderr


def test_hub_model_in_offline_mode_is_one_sentence(home, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["train", "model=someone/not-downloaded", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert "Model 'someone/not-downloaded' is not on this machine" in err and err.count("\n") == 1
    assert not list((home / "runs").glob("*"))


def test_unreachable_hub_fails_with_one_sentence(home, capsys, monkeypatch):
    """A Hub that accepts connections and never answers (a dead proxy, a captive network)."""
    import socket

    from huggingface_hub import constants

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
    try:
        assert main(["train", "model=someone/not-downloaded", "--home", str(home)]) == 2
    finally:
        silent.close()
    err = capsys.readouterr().err
    assert err.startswith("error: Model 'someone/not-downloaded' is not on this machine and the Hugging "
                          "Face Hub cannot be reached"), err
    assert not list((home / "runs").glob("*"))


def test_the_command_process_ends_with_idle_pool_workers_alive():
    """`studio ui` stopped by SIGTERM left idle ThreadPoolExecutor workers (non-daemon threads that
    wait on their queue). cli's end of process runs threading's exit hooks, as the interpreter
    does, so they end; joining them directly waited forever. Its exit code and atexit handlers stay."""
    import subprocess
    import sys

    script = ("import atexit, concurrent.futures as cf; pool = cf.ThreadPoolExecutor(2); pool.submit(int).result(); "
              "atexit.register(print, 'atexit ran'); from studio import cli; cli._end_process(3)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "atexit ran" in done.stdout


def test_a_taken_port_and_a_free_one():
    import socket

    from studio.errors import UserError
    from studio.security import check_listen

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError) as caught:
            check_listen("127.0.0.1", port)
        assert str(caught.value).startswith(f"Port {port} is already in use")
        assert f"--port {port + 1}" in str(caught.value)
    check_listen("127.0.0.1", port)  # free again: nothing to say


def test_serve_on_a_taken_port_is_one_line_before_the_model_loads(home, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "demo", "--port", str(port), "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: Port {port} is already in use") and err.count("\n") == 1
