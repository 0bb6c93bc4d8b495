"""What a client that reaches the port can do: attacks from issue 5 against a real `studio ui`.

Each server is a real subprocess on a free port with its own home. Requests are plain HTTP
(httpx), the way an attacker's script or page would send them; hidden handlers are called by
`fn_index` through /gradio_api/queue/join. The policy rules themselves (paths, model folders)
are also checked in-process on a `Workspace`, faster and for every case.
"""

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
from helpers import free_port
from studio.errors import UserError
from studio.paths import DEMO_MODEL
from studio.security import LaunchPolicy, parse_size
from studio.workspace import Workspace

AUTH = ("tester", "pw-" + uuid.uuid4().hex[:8])


class StudioProcess:
    """`python -m studio ARGS --home HOME --port PORT`, ready when the page answers."""

    def __init__(self, home: Path, *args: str):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home.parent / f"server-{self.port}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "studio", *args, "--home", str(home), "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "STUDIO_LANG": "en"})
        self.wait_ready()

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.output()[-3000:])
            try:
                if httpx.get(self.url + "/", timeout=2).status_code in (200, 401):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError("studio did not answer in time")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def run_folders(self) -> list[Path]:
        return sorted((self.home / "runs").glob("*")) if (self.home / "runs").is_dir() else []

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """A studio as `studio` starts it (loopback), with a small upload cap to test it."""
    srv = StudioProcess(tmp_path_factory.mktemp("local") / "home", "--max-upload", "64KB")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def exposed(tmp_path_factory, model_dir):
    """Reachable from other machines, with a login, a model folder and remote code allowed."""
    srv = StudioProcess(tmp_path_factory.mktemp("exposed") / "home", "ui", "--host", "0.0.0.0",
                        "--auth", ":".join(AUTH), "--model-dir", str(model_dir), "--allow-remote-code")
    yield srv
    srv.stop()


def upload(url: str, path: Path, client: httpx.Client | None = None, **headers) -> httpx.Response:
    with open(path, "rb") as fh:
        return (client or httpx).post(f"{url}/gradio_api/upload", files={"files": (path.name, fh)},
                                      headers=headers, timeout=60)


def call_api(url: str, name: str, data: list, client: httpx.Client | None = None) -> tuple[str, str]:
    """POST /gradio_api/call/NAME then read its result stream: ('complete'|'error', payload)."""
    http = client or httpx.Client()
    event = http.post(f"{url}/gradio_api/call/{name}", json={"data": data}, timeout=60)
    event.raise_for_status()
    kind = None
    with http.stream("GET", f"{url}/gradio_api/call/{name}/{event.json()['event_id']}", timeout=120) as resp:
        for line in resp.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind in ("complete", "error"):
                return kind, line.split(":", 1)[1].strip()
    raise AssertionError("no result from the API")


def call_fn_index(url: str, fn_index: int, data: list) -> list[dict]:
    """Call a (hidden) handler directly, as any client can; returns every queue message."""
    session = uuid.uuid4().hex
    with httpx.Client(timeout=120) as http:
        joined = http.post(f"{url}/gradio_api/queue/join",
                           json={"data": data, "fn_index": fn_index, "session_hash": session,
                                 "event_data": None, "trigger_id": None})
        if joined.status_code != 200:
            return [{"msg": "refused", "status": joined.status_code, "text": joined.text}]
        messages = []
        with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as resp:
            for line in resp.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    messages.append(message)
                    if message.get("msg") in ("process_completed", "close_stream", "unexpected_error"):
                        break
        return messages


def remote_code_model(folder: Path, marker: Path, code_folder: str | None = None) -> None:
    """A model folder whose config runs a .py file that would write `marker` when imported."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evil_config.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n")
    target = f"{code_folder}--evil_config.EvilConfig" if code_folder else "evil_config.EvilConfig"
    (folder / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": {"AutoConfig": target}}))


# --- item 1: no code execution from the network -------------------------------------------------

def test_uploaded_remote_code_model_is_refused_and_nothing_runs(local, tmp_path):
    """The issue's chain: upload a .py and a config.json whose auto_map points at the upload, then
    start a run on that upload folder with trust_remote_code=true."""
    marker = tmp_path / "marker.txt"
    source = tmp_path / "attack"
    remote_code_model(source, marker)
    code = upload(local.url, source / "evil_config.py")
    assert code.status_code == 200, code.text
    code_folder = str(Path(code.json()[0]).parent)
    remote_code_model(source, marker, code_folder=code_folder)  # auto_map -> the uploaded .py
    config = upload(local.url, source / "config.json")
    assert config.status_code == 200, config.text
    model_folder = str(Path(config.json()[0]).parent)
    before = local.run_folders()

    kind, payload = call_api(local.url, "start_run", [[f"model={model_folder}", "trust_remote_code=true"]])

    assert not marker.exists(), "the uploaded code ran"
    assert local.run_folders() == before
    assert kind == "error" and "Trust remote code is off" in payload, payload
    # Without remote code the upload folder is still not a model.
    kind, payload = call_api(local.url, "start_run", [[f"model={model_folder}"]])
    assert kind == "error" and "upload" in payload and not marker.exists(), payload
    assert local.run_folders() == before


def test_exposed_studio_refuses_upload_folders_even_with_remote_code_allowed(exposed, tmp_path):
    marker = tmp_path / "marker.txt"
    source = tmp_path / "attack"
    remote_code_model(source, marker)
    with logged_in(exposed) as http:
        folders = {upload(exposed.url, source / name, http).json()[0] for name in ("evil_config.py", "config.json")}
        before = exposed.run_folders()
        for folder in {str(Path(f).parent) for f in folders}:
            kind, payload = call_api(exposed.url, "start_run",
                                     [[f"model={folder}", "trust_remote_code=true"]], http)
            assert kind == "error" and "upload" in payload, payload
    assert not marker.exists() and exposed.run_folders() == before


def test_exposed_studio_takes_local_models_only_from_model_dirs(exposed, tmp_path):
    outside = tmp_path / "some-model"
    outside.mkdir()
    (outside / "config.json").write_text(json.dumps({"model_type": "llama"}))
    before = exposed.run_folders()
    with logged_in(exposed) as http:
        kind, payload = call_api(exposed.url, "start_run", [[f"model={outside}"]], http)
    assert kind == "error" and "--model-dir" in payload, payload
    assert exposed.run_folders() == before


# --- item 3: login, Host header, cross-origin writes, upload cap, monitoring --------------------

@contextlib.contextmanager
def logged_in(srv):
    """An HTTP client holding the login cookie of `srv`."""
    with httpx.Client(timeout=60) as http:
        resp = http.post(f"{srv.url}/login", data={"username": AUTH[0], "password": AUTH[1]})
        assert resp.status_code == 200 and resp.json().get("success"), resp.text
        yield http


def test_login_guards_page_and_api(exposed, tmp_path):
    data = tmp_path / "d.json"
    data.write_text("[]")
    with httpx.Client(timeout=60) as anonymous:
        assert anonymous.get(f"{exposed.url}/config").status_code == 401
        assert anonymous.get(f"{exposed.url}/gradio_api/info").status_code == 401
        assert anonymous.post(f"{exposed.url}/gradio_api/call/list_runs", json={"data": []}).status_code == 401
        assert anonymous.post(f"{exposed.url}/gradio_api/queue/join",
                              json={"data": [], "fn_index": 0, "session_hash": "x"}).status_code == 401
        assert upload(exposed.url, data, anonymous).status_code == 401
        wrong = anonymous.post(f"{exposed.url}/login", data={"username": AUTH[0], "password": "nope"})
        assert wrong.status_code != 200 or not wrong.json().get("success")
    with logged_in(exposed) as http:
        assert http.get(f"{exposed.url}/config").status_code == 200
        assert call_api(exposed.url, "list_runs", [], http)[0] == "complete"


def test_exposed_without_login_prints_a_warning(tmp_path):
    srv = StudioProcess(tmp_path / "home", "--host", "0.0.0.0")
    try:
        lines = [line for line in srv.output().splitlines() if line.startswith("warning:")]
        assert lines and "--auth" in lines[0], srv.output()
    finally:
        srv.stop()


def test_login_with_auth_has_no_warning(exposed):
    assert "warning:" not in exposed.output()


@pytest.mark.parametrize("host, allowed", [
    ("evil.example", False), ("rebind.attacker.test:{port}", False), ("localhost:{port}", True),
    ("127.0.0.1:{port}", True), ("10.1.2.3:{port}", False),
])
def test_foreign_host_header_is_refused(local, host, allowed):
    resp = httpx.get(f"{local.url}/config", headers={"Host": host.format(port=local.port)}, timeout=30)
    assert (resp.status_code == 200) is allowed, (host, resp.status_code)
    api = httpx.post(f"{local.url}/gradio_api/call/list_runs", json={"data": []},
                     headers={"Host": host.format(port=local.port)}, timeout=30)
    assert (api.status_code == 200) is allowed, (host, api.status_code)


def test_exposed_studio_accepts_its_addresses_but_not_foreign_names(exposed):
    assert httpx.get(f"{exposed.url}/", headers={"Host": f"192.168.7.9:{exposed.port}"}).status_code == 200
    assert httpx.get(f"{exposed.url}/", headers={"Host": "evil.example"}).status_code == 403


def test_cross_origin_upload_is_refused(local, tmp_path):
    data = tmp_path / "cross.json"
    data.write_text(json.dumps([{"instruction": "q", "output": "a"}]))
    refused = upload(local.url, data, Origin="http://evil.example")
    assert refused.status_code == 403
    assert upload(local.url, data, Origin="null").status_code == 403
    same_site = upload(local.url, data, Origin=local.url)
    assert same_site.status_code == 200 and Path(same_site.json()[0]).read_text() == data.read_text()
    started = httpx.post(f"{local.url}/gradio_api/call/start_run", json={"data": [["max_steps=1"]]},
                         headers={"Origin": "http://evil.example"}, timeout=30)
    assert started.status_code == 403


def test_upload_size_is_capped(local, tmp_path):
    big = tmp_path / "big.json"
    big.write_text(json.dumps([{"instruction": "x" * 1000, "output": "y"}] * 100))  # ~100 KB > 64KB
    assert upload(local.url, big).status_code == 413
    small = tmp_path / "small.json"
    small.write_text("[]")
    assert upload(local.url, small).status_code == 200


def test_default_upload_cap_is_200_mb():
    assert LaunchPolicy().max_upload_bytes == 200 * 1024 ** 2 == parse_size("200MB")
    assert parse_size("1.5GB") == int(1.5 * 1024 ** 3) and parse_size("512kb") == 512 * 1024
    with pytest.raises(UserError):
        parse_size("lots")


def test_monitoring_is_off(local):
    resp = httpx.get(f"{local.url}/monitoring", timeout=30)
    assert resp.status_code in (403, 404)
    assert "Monitoring URL" not in local.output()


# --- item 2: hidden handlers cannot read outside the allowed folders ----------------------------

def test_hidden_handlers_cannot_read_files_outside_the_allowed_folders(local, tmp_path):
    """Every handler that takes text or a file is called directly with paths: an uploaded file
    (the control: some handler must show it) and files outside the allowed folders (none may)."""
    secret_word, canary_word = "SECRET-" + uuid.uuid4().hex, "CANARY-" + uuid.uuid4().hex
    secret = tmp_path / "private.json"
    secret.write_text(json.dumps([{"instruction": secret_word, "output": secret_word}] * 3))
    canary = local.home / "uploads" / "canary.json"
    canary.parent.mkdir(parents=True, exist_ok=True)
    canary.write_text(json.dumps([{"instruction": canary_word, "output": canary_word}] * 3))
    config = httpx.get(f"{local.url}/config", timeout=30).json()
    kinds = {c["id"]: c["type"] for c in config["components"]}
    defaults = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
    readers = 0
    for fn_index, dep in enumerate(config["dependencies"]):
        inputs = dep.get("inputs") or []
        if not any(kinds.get(i) in ("dropdown", "textbox", "file") for i in inputs):
            continue
        for target in (str(canary), str(secret), "/etc/passwd"):
            data = []
            for i in inputs:
                if kinds.get(i) == "file":
                    data.append({"path": target, "meta": {"_type": "gradio.FileData"}, "orig_name": "x.json"})
                elif kinds.get(i) in ("dropdown", "textbox"):
                    data.append(target)
                else:
                    data.append(defaults.get(i))
            text = json.dumps(call_fn_index(local.url, dep.get("id", fn_index), data))
            if target == str(canary):
                readers += canary_word in text
            else:
                assert secret_word not in text and "root:x:0:0" not in text, (fn_index, dep, text[:2000])
    assert readers, "no handler showed the uploaded file: the calls did not reach the Data tab"
    assert not list((local.home / "uploads").glob("*private*")), "a direct call copied the file into uploads"


# --- the rules themselves, on a Workspace ------------------------------------------------------

@pytest.fixture
def ws(home):
    return Workspace(home)


def test_paths_from_the_network(ws, tmp_path):
    inside = ws.home / "uploads" / "mine.json"
    inside.parent.mkdir(parents=True)
    inside.write_text("[]")
    outside = tmp_path / "outside.json"
    outside.write_text("[]")
    link = ws.home / "uploads" / "link.json"
    link.symlink_to(outside)
    assert ws.resolve_user_path(str(inside), "data") == str(inside.resolve())
    assert ws.resolve_user_path("demo-en", "data").endswith("demo_en.json")
    assert ws.resolve_user_path("someone/some-dataset", "data") == "someone/some-dataset"
    for bad in (str(outside), "/etc/passwd", str(link), "../outside.json", "~/.ssh/id_rsa",
                str(ws.home / ".." / "outside.json")):
        with pytest.raises(UserError) as err:
            ws.resolve_user_path(bad, "data")
        assert err.value.key == "data.path"


def test_upload_folders_are_never_models_symlinks_included(ws, tmp_path):
    folder = ws.home / "uploads" / "model"
    folder.mkdir(parents=True)
    alias = tmp_path / "innocent-looking"
    alias.symlink_to(folder)
    for path in (folder, alias):
        with pytest.raises(UserError) as err:
            ws.resolve_user_path(str(path), "model")
        assert err.value.key == "model.path" and "upload" in str(err.value)
    assert ws.resolve_user_path("demo", "model") == str(DEMO_MODEL)
    assert ws.resolve_user_path("HuggingFaceTB/SmolLM2-135M", "model") == "HuggingFaceTB/SmolLM2-135M"
    assert ws.resolve_user_path(str(tmp_path), "model") == str(tmp_path.resolve())  # loopback: user's own


def test_exposed_workspace_takes_models_only_from_model_dirs(home, tmp_path):
    models = tmp_path / "models"
    (models / "mine").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ws = Workspace(home, LaunchPolicy.for_launch(host="0.0.0.0", model_dirs=[str(models)]))
    assert ws.policy.exposed and ws.policy.warning() == "security.exposed_without_auth"
    assert ws.resolve_user_path(str(models / "mine"), "model") == str((models / "mine").resolve())
    assert ws.resolve_user_path("demo", "model") == str(DEMO_MODEL)
    with pytest.raises(UserError, match="--model-dir"):
        ws.resolve_user_path(str(elsewhere), "model")
    sneaky = models / "escape"
    sneaky.symlink_to(elsewhere)
    with pytest.raises(UserError, match="--model-dir"):
        ws.resolve_user_path(str(sneaky), "model")


def test_start_refuses_remote_code_unless_allowed_before_any_code_or_folder(home, tmp_path):
    marker = tmp_path / "marker.txt"
    remote_code_model(tmp_path / "custom", marker)
    ws = Workspace(home)
    with pytest.raises(UserError) as err:
        ws.start([f"model={tmp_path / 'custom'}", "trust_remote_code=true"])
    assert err.value.key == "model.trust_remote_code"
    assert not marker.exists() and not list((home / "runs").glob("*"))


def test_share_or_wide_host_is_exposed_loopback_is_not():
    assert not LaunchPolicy(host="127.0.0.1").exposed and not LaunchPolicy(host="localhost").exposed
    assert LaunchPolicy(host="0.0.0.0").exposed and LaunchPolicy(share=True).exposed
    assert LaunchPolicy(share=True).warning() == "security.exposed_without_auth"
    assert LaunchPolicy(share=True, auth=("a", "b")).warning() is None and LaunchPolicy().warning() is None
    assert LaunchPolicy.for_launch(auth="a:b:c").auth == ("a", "b:c")
    with pytest.raises(UserError):
        LaunchPolicy.for_launch(auth="no-colon")


def test_a_real_upload_still_reaches_the_home(local, tmp_path):
    """The guard on save_upload accepts what the upload route received (the page's own flow)."""
    data = tmp_path / "mine.json"
    data.write_text(json.dumps([{"instruction": "q", "output": "a"}]))
    received = upload(local.url, data, Origin=local.url).json()[0]
    config = httpx.get(f"{local.url}/config", timeout=30).json()
    kinds = {c["id"]: c["type"] for c in config["components"]}
    defaults = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
    handler = next(d for d in config["dependencies"] if "file" in [kinds.get(i) for i in d["inputs"]])
    file_data = {"path": received, "meta": {"_type": "gradio.FileData"}, "orig_name": "mine.json"}
    messages = call_fn_index(local.url, handler["id"], [file_data if kinds.get(i) == "file" else defaults.get(i)
                                                        for i in handler["inputs"]])
    assert messages[-1].get("success"), messages
    assert (local.home / "uploads" / "mine.json").read_text() == data.read_text()


def test_login_from_the_environment_and_extra_host_names(monkeypatch):
    from studio.security import AllowedHosts

    monkeypatch.setenv("STUDIO_AUTH", "space-user:s3cret")
    policy = LaunchPolicy.for_launch(host="0.0.0.0", allowed_hosts=["Studio.Example.org"])
    assert policy.auth == ("space-user", "s3cret") and policy.warning() is None
    hosts = AllowedHosts(policy.host, policy.allowed_hosts)
    assert "studio.example.org:443" in hosts and "evil.example" not in hosts
    hosts.allow("abc123.gradio.live")  # what launch adds for a share link
    assert "abc123.gradio.live" in hosts
    loopback = AllowedHosts("127.0.0.1")
    assert "10.0.0.1:7860" not in loopback and "[::1]:7860" in loopback and "localhost" in loopback
