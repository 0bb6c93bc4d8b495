"""Training on library datasets (demo model, a few CPU steps): splits, held-out test, manifest, mixes."""

import json

from helpers import fast_overrides
from studio.library import Library
from studio.prepare import DataRecipe, prepare
from studio.workspace import Workspace

LIGHT = {"trim": True, "drop_empty": True, "dedupe": "exact", "conflicts": "keep_first"}


def prompts(path):
    return {json.dumps(json.loads(line)["prompt"], ensure_ascii=False) for line in path.read_text().splitlines()}


def saved(ws: Workspace, source: str, name: str) -> dict:
    prepared = prepare(DataRecipe(source=source, clean=LIGHT, augment={"methods": ["swap"], "multiplier": 0.5}))
    return Library(ws.home).save(prepared, name)


def train(ws: Workspace, overrides: list[str]):
    run = ws.start(overrides)
    ws.jobs.wait(300)
    assert not ws.jobs.busy(), "training did not finish in time"
    assert run.status()["state"] == "completed", run.status()["message"]
    return run


def test_a_library_dataset_trains_on_train_and_holds_out_its_test_split(home):
    ws = Workspace(home)
    entry = saved(ws, "demo-en", "demo english")
    meta = Library(home).get(entry["id"])
    run = train(ws, fast_overrides(data=entry["ref"], max_steps=3, max_samples=0, eval_every=3))
    data = run.path / "data"
    manifest = json.loads((data / "manifest.json").read_text())
    (source,) = manifest["sources"]
    assert source["ref"] == entry["ref"] and source["hash"] == meta["hash"]
    assert {s: v["sha256"] for s, v in source["splits"].items()} == {s: v["sha256"] for s, v in meta["splits"].items()}
    library_test = Library(home).records(entry["id"], "test")
    test_lines = (data / "test.jsonl").read_text().splitlines()
    assert len(test_lines) == len(library_test) == manifest["files"]["test"]["rows"] > 0
    assert not prompts(data / "test.jsonl") & prompts(data / "train.jsonl")  # never trained
    train_rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    assert all(not key.startswith("_") for row in train_rows for key in row)  # metadata stripped
    assert len(train_rows) == meta["splits"]["train"]["rows"]  # augmented rows included, none too long
    assert (run.path / "adapter" / "adapter_model.safetensors").is_file()
    assert "held out for evaluation" in (run.path / "logs.txt").read_text()


def test_a_mix_of_two_library_datasets_trains_and_records_both(home):
    ws = Workspace(home)
    en = saved(ws, "demo-en", "en")
    zh = saved(ws, "demo-zh", "zh")
    run = train(ws, fast_overrides(mix=f"{en['ref']}=0.7, {zh['ref']}=0.3", max_samples=50, max_steps=2,
                                   max_length=128))
    manifest = json.loads((run.path / "data" / "manifest.json").read_text())
    used = {s["ref"]: s["used"]["train"] for s in manifest["sources"]}
    assert used == {en["ref"]: 35, zh["ref"]: 15}
    assert manifest["files"]["train"]["rows"] == 50 and manifest["data"]["mix"]
    assert not prompts(run.path / "data" / "test.jsonl") & prompts(run.path / "data" / "train.jsonl")
