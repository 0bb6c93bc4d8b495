"""Evaluation on the demo model: a short LoRA run scores higher than its base, results are cached."""

import json
import os
from pathlib import Path

import pytest

from helpers import fast_overrides
from studio import evaluate as ev
from studio.cli import main
from studio.generation import GenerationSettings
from studio.workspace import Workspace

SETTINGS = GenerationSettings(batch_size=16, max_new_tokens=24)
ROWS = 24


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short LoRA run on the demo data, through the job manager (as the Train tab starts it)."""
    ws = Workspace(tmp_path_factory.mktemp("evaluate") / "home")
    run = ws.start(fast_overrides(max_steps=30, batch_size=8, learning_rate=3e-3, max_samples=0,
                                  eval_every=30))
    ws.jobs.wait(1200)
    assert run.status()["state"] == "completed", run.status()["message"]
    return ws, run


def test_fine_tuned_beats_base_and_asking_again_is_a_cache_hit(trained):
    ws, run = trained
    before = run.status()
    evaluator = ev.evaluator(ws.jobs, ws.home)
    request = evaluator.start([run.id], settings=SETTINGS, max_rows=ROWS)
    evaluator.wait(request.id, 1200)
    status = evaluator.status(request.id)
    assert status["state"] == "completed", status
    [result] = evaluator.results(request.id)
    scores = result["test"]
    assert scores["rows"] == ROWS and scores["tokenization"] == "words"
    assert scores["tuned"]["rougeL"] > scores["base"]["rougeL"], scores
    assert scores["tuned"]["eval_loss"] < scores["base"]["eval_loss"]
    assert scores["tuned"]["perplexity"] < scores["base"]["perplexity"]
    folder = Path(result["test_folder"])
    assert folder.parent == run.path / "eval"
    examples = ev.read_examples(folder)
    assert len(examples) == ROWS and {"prompt", "reference", "base", "tuned", "base_rougeL", "tuned_bleu"} <= set(examples[0])
    assert json.loads((folder / "status.json").read_text())["state"] == "completed"  # the job's own status
    after = run.status()
    assert (after["state"], after["message"], after.get("duration_s")) == (
        before["state"], before["message"], before.get("duration_s"))  # the run reads as before

    written = os.stat(folder / "scores.json").st_mtime_ns
    again = evaluator.start([run.id], settings=SETTINGS, max_rows=ROWS)
    evaluator.wait(again.id, 60)
    assert evaluator.status(again.id)["items"][0]["state"] == "cached"
    assert os.stat(folder / "scores.json").st_mtime_ns == written
    assert evaluator.results(again.id)[0]["test"]["key"] == scores["key"]


def test_cli_eval_json(trained, capsys):
    ws, run = trained
    code = main(["eval", run.id, "--max-rows", str(ROWS), "--max-new-tokens", "24", "--json", "--home", str(ws.home)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"base", "tuned", "settings", "data_hash", "rows", "tokenization"} <= set(out)
    assert set(out["tuned"]) >= {"rouge1", "rouge2", "rougeL", "bleu", "eval_loss", "perplexity"}
    assert out["tuned"]["rougeL"] > out["base"]["rougeL"]


def test_run_with_base_model_gone_is_refused_on_the_cli(trained, tmp_path, capsys):
    ws, run = trained
    copy = ws.store.root / (run.id + "-moved")
    import shutil

    shutil.copytree(run.path, copy)
    text = (copy / "config.yaml").read_text().replace("path: demo", f"path: {tmp_path / 'gone'}", 1)
    (copy / "config.yaml").write_text(text)
    assert main(["eval", copy.name, "--home", str(ws.home)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no longer available" in err and "n/a" in err
