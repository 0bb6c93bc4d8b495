"""The dataset library (save, list, records, hashes), `library:<id>` references and data.mix.

Datasets are built from synthetic records in tmp homes; lengths are counted with the bundled
demo tokenizer (no model is loaded).
"""

import hashlib
import json
from pathlib import Path

import pytest

from studio.config import StudioConfig, apply_overrides, validate
from studio.data import check_training_data, library_splits, trainable_records, training_splits, write_manifest
from studio.errors import UserError
from studio.library import Library, dataset_hash, mix_counts, parse_mix, slugify
from studio.paths import library_dir, resolve_data_path, use_home_caches
from studio.workspace import Workspace


def sft(i: int, tag: str = "a", **meta) -> dict:
    return {"prompt": [{"role": "user", "content": f"{tag} question {i}?"}],
            "completion": [{"role": "assistant", "content": f"{tag} answer {i}."}], "_row": i + 1, **meta}


def splits(tag: str, n_train: int, n_val: int = 4, n_test: int = 3) -> dict:
    return {"train": [sft(i, tag) for i in range(n_train)],
            "val": [sft(100 + i, tag) for i in range(n_val)],
            "test": [sft(200 + i, tag) for i in range(n_test)]}


def save(lib: Library, name: str, parts: dict, fmt: str = "alpaca") -> dict:
    return lib.save_splits(parts, {"name": name, "format": fmt, "kind": "sft", "source": {"name": "x.json"},
                                   "recipe": {"source": "x.json"}, "steps": []})


@pytest.fixture
def lib(home):
    home.mkdir(parents=True)
    use_home_caches(home)  # library:<id> in a config resolves against the home opened last
    return Library(home)


def config(*items) -> StudioConfig:
    return apply_overrides(StudioConfig(), ["batch_size=2", "max_length=128", *items])


# ---- the library -------------------------------------------------------------------------------

def test_save_list_get_records_and_hashes(lib):
    parts = splits("a", 10)
    parts["train"].append(sft(50, "a", _augmented={"from": 1, "ops": ["swap"]}))
    entry = save(lib, "Medical QA", parts)
    folder = lib.root / entry["id"]
    hashes = {s: hashlib.sha256((folder / f"{s}.jsonl").read_bytes()).hexdigest() for s in ("train", "val", "test")}
    assert entry["id"] == f"medical-qa-{dataset_hash(hashes)[:8]}"
    assert entry["ref"] == "library:" + entry["id"] and entry["hash"] == dataset_hash(hashes)
    assert entry["rows"] == {"train": 11, "val": 4, "test": 3}
    meta = lib.get(entry["ref"])
    assert meta["name"] == "Medical QA" and meta["source"] == {"name": "x.json"}
    assert {s: meta["splits"][s]["sha256"] for s in hashes} == hashes
    assert meta["splits"]["train"]["augmented"] == 1
    assert lib.records(entry["id"], "test") == parts["test"]  # metadata kept in the library
    assert [e["id"] for e in lib.list()] == [entry["id"]]
    assert not [p for p in lib.root.iterdir() if p.name.startswith(".")]  # no scratch folder left


def test_the_same_data_saved_twice_is_one_dataset_and_other_data_another(lib):
    first = save(lib, "data", splits("a", 5))
    again = save(lib, "data", splits("a", 5))
    other = save(lib, "data", splits("b", 5))
    assert first["id"] == again["id"] != other["id"]
    assert len(lib.list()) == 2


def test_list_is_by_name_and_skips_damaged_entries(lib):
    save(lib, "zeta", splits("z", 3))
    save(lib, "Alpha", splits("a", 3))
    (lib.root / "broken-12345678").mkdir()
    (lib.root / "broken-12345678" / "dataset.json").write_text("{not json")
    assert [e["name"] for e in lib.list()] == ["Alpha", "zeta"]
    with pytest.raises(UserError, match="damaged"):
        lib.get("broken-12345678")


def test_a_changed_split_file_is_refused_when_verified(lib):
    entry = save(lib, "data", splits("a", 5))
    path = lib.root / entry["id"] / "train.jsonl"
    path.write_text(path.read_text().replace("answer 1.", "answer one."))
    assert len(lib.records(entry["id"], "train")) == 5  # reading for a look is fine
    with pytest.raises(UserError, match="was changed after it was saved"):
        lib.records(entry["id"], "train", verify=True)


@pytest.mark.parametrize("ref", ["library:missing-00000000", "library:../runs", "library:/etc", "library:",
                                 "library:A B"])
def test_unknown_or_malformed_ids_are_one_sentence(lib, ref):
    with pytest.raises(UserError) as info:
        lib.get(ref)
    assert info.value.key == "data.path"
    assert "No library dataset" in str(info.value)


def test_ids_never_leave_the_library_folder(home):
    assert library_dir("library:../x", home) is None
    assert library_dir("library:a/b", home) is None
    assert library_dir("library:good-1234abcd", home) == home.resolve() / "datasets" / "good-1234abcd"
    assert slugify("医疗 QA!") == "qa" and slugify("医疗") == "dataset"


def test_a_library_ref_resolves_to_its_train_file_for_previews(lib):
    entry = save(lib, "data", splits("a", 5))
    assert resolve_data_path(entry["ref"]) == str(lib.root / entry["id"] / "train.jsonl")


def test_the_workspace_accepts_refs_that_exist_in_its_home(lib, home):
    entry = save(lib, "data", splits("a", 5))
    ws = Workspace(home)
    assert ws.resolve_user_path(entry["ref"], "data") == entry["ref"]
    with pytest.raises(UserError):
        ws.resolve_user_path("library:nothere-12345678", "data")
    with pytest.raises(UserError):
        ws.resolve_user_path("library:../../etc/passwd", "data")
    assert ws.library().list()[0]["id"] == entry["id"]


# ---- data.mix ----------------------------------------------------------------------------------

def test_parse_mix_normalises_shares():
    assert parse_mix("library:a-1=0.7, library:b-2=0.3") == [("library:a-1", 0.7), ("library:b-2", 0.3)]
    assert parse_mix("library:a-1 = 7 ;\n library:b-2=3") == [("library:a-1", 0.7), ("library:b-2", 0.3)]
    assert parse_mix("library:a-1=2") == [("library:a-1", 1.0)]


@pytest.mark.parametrize("text, words", [
    ("library:a-1", "needs the form"),
    ("demo-en=0.5", "library datasets only"),
    ("library:../x=0.5", "library datasets only"),
    ("library:a-1=0", "must be a number above 0"),
    ("library:a-1=-1", "must be a number above 0"),
    ("library:a-1=nan", "must be a number above 0"),
    ("library:a-1=lots", "must be a number above 0"),
    ("library:a-1=0.5, library:a-1=0.5", "appears twice"),
    (" , ", "names no dataset"),
])
def test_bad_mixes_are_one_sentence_about_data_mix(text, words):
    with pytest.raises(UserError) as info:
        parse_mix(text)
    assert info.value.key == "data.mix" and words in str(info.value)


def test_config_validation_names_bad_mixes_and_refs():
    assert "data.mix" in validate(config("mix=library:a-1=zero"))
    assert "data.path" in validate(config("data=library:../x"))
    assert validate(config("mix=library:a-1=0.5, library:b-2=0.5", "data=library:c-3")) == {}


def test_mix_counts_add_up_and_follow_shares():
    assert mix_counts([0.7, 0.3], 100) == [70, 30]
    assert mix_counts([0.5, 0.5], 5) in ([3, 2], [2, 3])
    assert mix_counts([0.99, 0.01], 10) == [9, 1]  # every dataset gives at least one row
    assert sum(mix_counts([0.2, 0.3, 0.5], 37)) == 37


# ---- training on library data ------------------------------------------------------------------

def test_a_library_dataset_trains_its_train_split_and_holds_out_its_test_split(lib):
    entry = save(lib, "data", splits("a", 12))
    cfg = config(f"data={entry['ref']}", "val_size=0.4", "test_size=0.4")  # ignored: the library's own splits
    parts, report = training_splits(cfg)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [12, 4, 3]
    assert all(not k.startswith("_") for s in parts.values() for r in s for k in r)
    train_prompts = {json.dumps(r["prompt"]) for r in parts["train"]}
    assert not train_prompts & {json.dumps(r["prompt"]) for r in parts["test"]}
    assert report["sources"][0]["hash"] == entry["hash"] and report["sources"][0]["share"] == 1
    assert "its 3 test rows are held out" in str(report["summary"])
    assert trainable_records(cfg)[0] == parts["train"]
    capped, _ = training_splits(config(f"data={entry['ref']}", "max_samples=5"))
    assert capped["train"] == parts["train"][:5]


def test_mixing_draws_each_dataset_by_its_share_with_the_seed(lib):
    a = save(lib, "a", splits("a", 30))
    b = save(lib, "b", splits("b", 10))
    cfg = config(f"mix={a['ref']}=0.75, {b['ref']}=0.25")
    parts, report = library_splits(cfg)
    tags = [r["prompt"][0]["content"][0] for r in parts["train"]]
    assert len(tags) == 40 and tags.count("a") == 30 and tags.count("b") == 10
    assert len(parts["val"]) == 8 and len(parts["test"]) == 6  # whole val and test splits of both
    assert [s["used"]["train"] for s in report["sources"]] == [30, 10]
    # max_samples sets the total; b is oversampled: every row once, then a sample
    parts, report = library_splits(config(f"mix={a['ref']}=0.5, {b['ref']}=0.5", "max_samples=30"))
    b_rows = [r["prompt"][0]["content"] for r in parts["train"] if r["prompt"][0]["content"].startswith("b")]
    assert len(parts["train"]) == 30 and len(b_rows) == 15 and len(set(b_rows)) == 10
    assert library_splits(config(f"mix={a['ref']}=0.5, {b['ref']}=0.5", "max_samples=30"))[0] == parts
    other_seed = library_splits(config(f"mix={a['ref']}=0.5, {b['ref']}=0.5", "max_samples=30", "seed=7"))[0]
    assert other_seed["train"] != parts["train"]
    test_prompts = {r["prompt"][0]["content"] for r in parts["test"]}
    assert not test_prompts & {r["prompt"][0]["content"] for r in parts["train"]}


def test_mixing_text_with_conversations_is_refused(lib):
    a = save(lib, "a", splits("a", 5))
    text = save(lib, "t", {"train": [{"text": f"line {i}"} for i in range(5)], "val": [], "test": []}, fmt="text")
    with pytest.raises(UserError, match="plain-text datasets with conversation"):
        library_splits(config(f"mix={a['ref']}=0.5, {text['ref']}=0.5"))


def test_preference_records_train_their_chosen_answer(lib):
    pref = [{"prompt": [{"role": "user", "content": f"q{i}"}], "chosen": [{"role": "assistant", "content": "good"}],
             "rejected": [{"role": "assistant", "content": "bad"}], "_row": i} for i in range(6)]
    entry = save(lib, "p", {"train": pref, "val": pref[:1], "test": []}, fmt="preference")
    parts, _ = training_splits(config(f"data={entry['ref']}"))
    assert parts["train"][0] == {"prompt": [{"role": "user", "content": "q0"}],
                                 "completion": [{"role": "assistant", "content": "good"}]}


def test_missing_datasets_are_refused_before_a_run_exists(lib):
    a = save(lib, "a", splits("a", 5))
    with pytest.raises(UserError) as info:
        check_training_data(config(f"mix={a['ref']}=0.5, library:gone-12345678=0.5"))
    assert info.value.key == "data.mix" and "gone-12345678" in str(info.value)
    with pytest.raises(UserError) as info:
        check_training_data(config("data=library:gone-12345678"))
    assert info.value.key == "data.path"


def test_the_check_is_cached_until_the_dataset_changes(lib):
    a = save(lib, "a", splits("a", 6))
    cfg = config(f"data={a['ref']}")
    first = check_training_data(cfg)
    assert check_training_data(cfg)["kept"] == first["kept"] == 6
    lib.remove(a["id"])
    with pytest.raises(UserError):
        check_training_data(cfg)


def test_long_rows_are_left_out_of_library_training_too(lib):
    parts = splits("a", 8)
    parts["train"][0]["completion"][0]["content"] = "word " * 400
    entry = save(lib, "long", parts)
    train, report = trainable_records(config(f"data={entry['ref']}"))
    assert len(train) == 7 and report["too_long"] == 1 and report["long_rows"] == "left_out"


def test_the_manifest_records_sources_and_file_hashes(lib, tmp_path):
    from studio.data import write_jsonl

    entry = save(lib, "a", splits("a", 6))
    cfg = config(f"data={entry['ref']}")
    parts, report = training_splits(cfg)
    folder = tmp_path / "run" / "data"
    for name, part in parts.items():
        write_jsonl(part, folder / f"{name}.jsonl")
    manifest = write_manifest(folder / "manifest.json", cfg, parts, report)
    saved = json.loads((folder / "manifest.json").read_text())
    assert saved == manifest
    assert saved["sources"][0]["splits"]["train"]["sha256"] == lib.get(entry["id"])["splits"]["train"]["sha256"]
    assert saved["files"]["test"]["sha256"] == hashlib.sha256((folder / "test.jsonl").read_bytes()).hexdigest()


def test_a_raw_file_keeps_its_old_path_and_records_its_sha256(tmp_path):
    rows = [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(20)]
    path = tmp_path / "d.json"
    path.write_text(json.dumps(rows))
    parts, report = training_splits(config(f"data={path}"))
    assert [len(parts[s]) for s in ("train", "val", "test")] == [14, 4, 2]
    assert report["sources"] == [{"path": str(path.resolve()), "name": "d.json",
                                  "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}]
    assert all(not k.startswith("_") for part in parts.values() for r in part for k in r)
    assert Path(resolve_data_path(str(path))) == path.resolve()


def test_a_bad_or_missing_mix_is_refused_before_a_run_folder_exists(lib, home):
    ws = Workspace(home)
    a = save(lib, "a", splits("a", 5))
    for mix, words in ((f"{a['ref']}=0.5, library:gone-12345678=0.5", "gone-12345678"),
                       (f"{a['ref']}=half", "must be a number above 0")):
        with pytest.raises(UserError) as info:
            ws.start([f"mix={mix}", "batch_size=2"])
        assert info.value.key == "data.mix" and words in str(info.value)
    assert not (home / "runs").exists() or not list((home / "runs").iterdir())
