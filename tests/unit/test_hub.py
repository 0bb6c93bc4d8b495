"""studio.hub: the curated list, the Hub status (offline / unreachable, cached), the token and its
redaction, and that a Hub model or dataset answers with a sentence instead of hanging."""

import socket
import threading

import pytest

from studio import hub, models
from studio.errors import UserError
from studio.i18n import LANGUAGES, Msg, table


class Silent:
    """A TCP server that accepts connections and never answers: a Hub that hangs."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self):
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def __exit__(self, *exc):
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def hung_hub(monkeypatch):
    """Online mode, with the Hub endpoint a server that never answers."""
    from huggingface_hub import constants

    with Silent() as url:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", url)
        monkeypatch.setattr(models, "HUB_PROBE_SECONDS", 1.0)
        hub.forget_status()
        yield url
    hub.forget_status()


@pytest.fixture(autouse=True)
def no_token():
    hub.set_token("")
    yield
    hub.set_token("")


def finishes(fn, timeout=60):
    """Run fn in a thread; (finished, result or exception). The bound is generous: the point is
    that it returns at all, where huggingface_hub/datasets retried for minutes."""
    box = {}

    def run():
        try:
            box["result"] = fn()
        except Exception as exc:  # the sentence under test
            box["result"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), box.get("result")


def test_curated_models_say_size_license_and_gating():
    assert len(hub.CURATED) >= 6
    assert len({m.id for m in hub.CURATED}) == len(hub.CURATED)
    for m in hub.CURATED:
        assert m.id.count("/") == 1 and m.url.endswith(m.id)
        assert m.params > 1e8 and 0 < m.lora_params < m.params / 10
        assert m.license and isinstance(m.gated, bool)
        assert {"model_type", "hidden_size", "num_hidden_layers", "vocab_size"} <= set(m.arch)
        memory = hub.lora_memory(m)
        assert memory["gpu"] > m.params and memory["cpu"] > m.params * 2  # at least the weights
    gated = {m.id for m in hub.CURATED if m.gated}
    assert gated == {"meta-llama/Llama-3.2-1B-Instruct", "google/gemma-3-1b-it"}
    sizes = [m.params for m in hub.CURATED]
    assert sizes == sorted(sizes)  # smallest first: the list is a ladder
    big, small = hub.curated("HuggingFaceTB/SmolLM2-1.7B-Instruct"), hub.curated("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert hub.lora_memory(big)["gpu"] > hub.lora_memory(small)["gpu"]
    assert [value for _, value in hub.model_choices()] == [m.id for m in hub.CURATED]


def test_every_hub_string_is_translated():
    codes = [code for code in table() if code.startswith("hub.")]
    assert len(codes) > 20
    for code in codes:
        for lang in LANGUAGES:
            assert table()[code].get(lang, "").strip(), (code, lang)
    for status in ("online", "unreachable", "offline"):
        for lang in LANGUAGES:
            line = hub.status_message(status).render(lang)
            assert "{" not in line and "hub." not in line


def test_offline_mode_is_detected_without_a_probe(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(models, "hub_reachable", lambda *a, **k: pytest.fail("probed while offline"))
    assert hub.hub_status() == "offline"
    assert "HF_HUB_OFFLINE" in hub.status_message().render("en")
    with pytest.raises(UserError) as err:
        models.check_model(models.ModelSection(path="HuggingFaceTB/SmolLM2-135M-Instruct"))
    assert err.value.msg.code == "security.model_offline"


def test_unreachable_hub_is_probed_once_and_remembered(hung_hub, monkeypatch):
    calls = []
    real = models.hub_reachable
    monkeypatch.setattr(models, "hub_reachable", lambda *a, **k: calls.append(1) or real(*a, **k))
    done, status = finishes(hub.hub_status)
    assert done and status == "unreachable"
    assert [hub.hub_status() for _ in range(5)] == ["unreachable"] * 5
    assert len(calls) == 1
    hub.forget_status()
    hub.hub_status()
    assert len(calls) == 2


def test_hub_model_check_answers_instead_of_hanging(hung_hub):
    section = models.ModelSection(path="HuggingFaceTB/SmolLM2-135M-Instruct")
    done, result = finishes(lambda: models.check_model(section))
    assert done, "the model check hung on an unreachable Hub"
    assert isinstance(result, UserError) and result.msg.code == "security.model_hub_unreachable"
    assert "cannot be reached" in result.render("en")


def test_hub_dataset_answers_instead_of_hanging(hung_hub):
    from studio.dataload import load_table

    done, result = finishes(lambda: load_table("someone/some-dataset", max_rows=5))
    assert done, "loading a Hub dataset hung on an unreachable Hub"
    assert isinstance(result, UserError) and result.msg.code == "hub.dataset_unreachable"
    assert result.key == "data.path"


def test_hub_dataset_offline_says_offline(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from studio.dataload import load_table

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    done, result = finishes(lambda: load_table("someone/some-dataset", max_rows=5))
    assert done and isinstance(result, UserError), result
    assert result.msg.code == "hub.dataset_offline"


def test_token_is_held_reported_and_redacted(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    secret = "hf_" + "Ab3" * 12
    assert hub.token() is None
    hub.set_token(f"  {secret}\n")
    assert hub.token() == secret and hub.token_source() == "form"
    line = hub.status_message("online").render("en")
    assert secret not in line and "never saved" in line
    text = f"401 Client Error for url https://x/?token={secret} Authorization: Bearer {secret}"
    assert secret not in hub.redact(text) and "***" in hub.redact(text)
    assert "hf_" + "Zz9" * 10 not in hub.redact("another hf_" + "Zz9" * 10)  # any token-shaped text
    hub.set_token("")
    assert hub.token() is None
    monkeypatch.setenv("HF_TOKEN", "envtoken123")
    assert hub.token_source() == "env"
    assert "envtoken123" not in hub.redact("bad envtoken123")
    with pytest.raises(UserError):
        hub.set_token("hf_abc def")


def test_loaders_pass_the_held_token(monkeypatch, tmp_path):
    """The token reaches from_pretrained (and nothing logs it): AutoConfig is asked with token=."""
    import transformers

    seen = {}

    def fake(path, **kwargs):
        seen.update(kwargs)
        raise OSError("not here")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", fake)
    hub.set_token("hf_" + "q" * 30)
    with pytest.raises(UserError):
        models.check_model(models.ModelSection(path="owner/model"))
    assert seen["token"] == "hf_" + "q" * 30


def test_gated_model_has_its_own_sentence(monkeypatch):
    import transformers
    from huggingface_hub import constants

    def fake(path, **kwargs):  # transformers' own words for huggingface_hub's GatedRepoError
        if kwargs.get("local_files_only"):
            raise OSError("not in cache")
        raise OSError(f"You are trying to access a gated repo.\nMake sure to have access to it at {path}.")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", fake)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_status", lambda *a, **k: "online")
    with pytest.raises(UserError) as err:
        models.check_model(models.ModelSection(path="meta-llama/Llama-3.2-1B-Instruct"))
    assert err.value.msg.code == "hub.model_gated"
    assert isinstance(Msg("hub.model_gated", source="x").render("zh"), str)
