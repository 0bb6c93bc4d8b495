"""Export: a merged model reloads with plain transformers and answers as base+adapter; the adapter
alone, archives, the Hub refusal offline, the snippet and the `studio chat` / `studio export` CLI."""

import subprocess
import sys
import zipfile

import pytest

from helpers import ROOT, fast_overrides
from studio.cli import main
from studio.config import StudioConfig, apply_overrides
from studio.errors import UserError
from studio.export import archive, chat_command, merge_and_save, push_to_hub, python_snippet, save_adapter
from studio.infer import generate_answers, load_for_inference
from studio.workspace import Workspace

QUESTION = [{"role": "user", "content": "What is the opposite of hot?"}]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("export") / "home"
    ws = Workspace(home)
    run = ws.jobs.start(apply_overrides(StudioConfig(), fast_overrides(max_steps=4, eval_every=4, learning_rate=5e-3)))
    ws.jobs.wait(600)
    assert run.status()["state"] == "completed", run.status()["message"]
    return home, run


def test_merged_export_reloads_with_plain_transformers_and_answers_the_same(trained, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    home, run = trained
    out = merge_and_save(run, tmp_path / "merged", shard_size="1MB")
    files = {p.name for p in out.iterdir()}
    assert "model.safetensors.index.json" in files  # sharded
    assert len([f for f in files if f.endswith(".safetensors")]) >= 2
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl"))]
    assert not list(tmp_path.glob(".merged*"))  # no temporary folder left behind
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "LlamaForCausalLM"
    merged = generate_answers(model, tokenizer, [QUESTION], max_new_tokens=24)
    peft_model, peft_tokenizer = load_for_inference(run.output_dir())
    assert merged == generate_answers(peft_model, peft_tokenizer, [QUESTION], max_new_tokens=24)
    with pytest.raises(UserError, match="not empty"):
        merge_and_save(run, out)


def test_adapter_export_archive_and_reload(trained, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    home, run = trained
    out = save_adapter(run, tmp_path / "adapter")
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert "training_args.bin" not in names  # a pickle: never exported
    base = AutoModelForCausalLM.from_pretrained(ROOT / "assets" / "model")
    assert isinstance(PeftModel.from_pretrained(base, out), PeftModel)
    zipped = archive(out)
    assert zipped == tmp_path / "adapter.zip"
    with zipfile.ZipFile(zipped) as zf:
        assert "adapter/adapter_model.safetensors" in zf.namelist()


def test_push_to_hub_fails_fast_offline(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "f"
    folder.mkdir()
    with pytest.raises(UserError, match="[Oo]ffline"):  # said at once: offline mode is read, not probed
        push_to_hub(folder, "me/model", "hf_secret")
    with pytest.raises(UserError, match="owner/name"):
        push_to_hub(folder, "../etc", "hf_secret")
    with pytest.raises(UserError, match="token"):
        push_to_hub(folder, "me/model", "")


def test_snippet_and_chat_command_reproduce_the_chat(trained, tmp_path, capsys):
    home, run = trained
    model, tokenizer = load_for_inference(run.output_dir())
    (expected,) = generate_answers(model, tokenizer, [QUESTION], max_new_tokens=24)
    script = tmp_path / "chat.py"
    script.write_text(python_snippet(run, prompt=QUESTION[0]["content"], max_new_tokens=24), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == expected

    command = chat_command(run, home, prompt=QUESTION[0]["content"])
    assert command.startswith("studio chat ") and run.id in command and "--stream" in command
    assert main(["chat", run.id, "--prompt", QUESTION[0]["content"], "--max-new-tokens", "24",
                 "--home", str(home)]) == 0
    assert capsys.readouterr().out.strip() == expected
    assert main(["chat", run.id, "--prompt", QUESTION[0]["content"], "--max-new-tokens", "24", "--stream",
                 "--home", str(home)]) == 0
    assert capsys.readouterr().out.strip() == expected


def test_cli_export_and_bad_runs(trained, tmp_path, capsys):
    home, run = trained
    assert main(["export", run.id, "--adapter", str(tmp_path / "out"), "--zip", "--home", str(home)]) == 0
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file() and (tmp_path / "out.zip").is_file()
    capsys.readouterr()
    assert main(["export", "no-such-run", "--merge", str(tmp_path / "x"), "--home", str(home)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    failed = Workspace(home).store.create(StudioConfig())
    failed.update_status(state="failed", message="boom")
    for argv in (["chat", failed.id, "--prompt", "hi"], ["export", failed.id, "--merge", str(tmp_path / "y")],
                 ["serve", failed.id], ["chat", run.id, "--prompt", "  "]):
        assert main([*argv, "--home", str(home)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "y").exists()
