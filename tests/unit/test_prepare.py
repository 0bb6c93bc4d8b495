"""studio.prepare: the recipe, its steps with counts, splits, augmentation of train only, replay."""

import json

import pytest

from studio.errors import UserError
from studio.library import Library
from studio.paths import use_home_caches
from studio.prepare import DataRecipe, prepare, replay, write_prepared

LIGHT = {"trim": True, "drop_empty": True, "dedupe": "off", "conflicts": "off"}  # no quality module needed


def rows_file(tmp_path, rows, name="data.json"):
    path = tmp_path / name
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return str(path)


def alpaca(n, **extra):
    return [{"instruction": f"Question number {i} about topic {i % 7}?", "input": "",
             "output": f"The answer to question {i} is {i * 3}.", **extra} for i in range(n)]


@pytest.fixture
def lib(home):
    home.mkdir(parents=True)
    use_home_caches(home)
    return Library(home)


def test_steps_run_in_order_with_counts_and_splits_are_disjoint(tmp_path):
    rows = alpaca(40) + [{"instruction": "  ", "input": "", "output": "x"}]
    prepared = prepare(DataRecipe(source=rows_file(tmp_path, rows), clean=LIGHT))
    names = [s["step"] for s in prepared.steps]
    assert names[:3] == ["load", "detect", "normalise"] and names[-1] == "split"
    assert prepared.steps[0]["after"] == 41 and prepared.steps[2]["after"] == 40  # the blank question has nothing
    assert prepared.format == "alpaca" and prepared.kind == "sft"
    assert prepared.rows() == {"train": 28, "val": 8, "test": 4}
    seen = [r["_row"] for part in prepared.splits.values() for r in part]
    assert len(seen) == len(set(seen)) == 40
    assert all("message" in s and "before" in s for s in prepared.steps)
    assert prepared.source["sha256"] and prepared.source["name"] == "data.json"


def test_the_same_recipe_gives_the_same_hashes_and_a_saved_recipe_replays(tmp_path, lib):
    recipe = DataRecipe(source=rows_file(tmp_path, alpaca(50)), clean=LIGHT, split_seed=3,
                        augment={"methods": ["swap", "delete"], "multiplier": 1.0})
    first = prepare(recipe)
    assert prepare(DataRecipe.from_dict(recipe.to_dict())).hashes() == first.hashes()
    entry = lib.save(first, "numbers")
    meta = lib.get(entry["id"])
    assert {s: v["sha256"] for s, v in meta["splits"].items()} == first.hashes()
    assert meta["recipe"]["augment"]["seed"] == 3  # every option written out for the replay
    assert replay(entry["id"], home=lib.home).hashes() == first.hashes()
    other_seed = prepare(DataRecipe.from_dict({**recipe.to_dict(), "split_seed": 4}))
    assert other_seed.hashes() != first.hashes()


def test_augmentation_touches_the_training_split_only(tmp_path):
    prepared = prepare(DataRecipe(source=rows_file(tmp_path, alpaca(30)), clean=LIGHT,
                                  augment={"methods": ["swap"], "multiplier": 1.0, "seed": 1}))
    train = prepared.splits["train"]
    assert any(r.get("_augmented") for r in train)
    assert not any(r.get("_augmented") for s in ("val", "test") for r in prepared.splits[s])
    assert prepared.steps[-1]["step"] == "augment"
    assert prepared.steps[-1]["after"] == len(train) > prepared.steps[-1]["before"]


def test_stratify_keeps_each_group_in_every_split(tmp_path):
    rows = alpaca(30, task="qa") + [dict(r, task="math") for r in alpaca(60)[30:]]
    prepared = prepare(DataRecipe(source=rows_file(tmp_path, rows), clean=LIGHT, stratify="task"))
    for split in ("train", "val", "test"):
        assert {r["_group"] for r in prepared.splits[split]} == {"qa", "math"}
    with pytest.raises(UserError, match="no such column"):
        prepare(DataRecipe(source=rows_file(tmp_path, rows), clean=LIGHT, stratify="topic"))


def test_preference_data_keeps_chosen_and_rejected(tmp_path):
    rows = [{"prompt": f"Say {i}", "chosen": f"{i}", "rejected": f"not {i}"} for i in range(20)]
    prepared = prepare(DataRecipe(source=rows_file(tmp_path, rows), clean=LIGHT))
    assert prepared.format == "preference" and prepared.kind == "preference"
    assert {"prompt", "chosen", "rejected"} <= set(prepared.splits["train"][0])


def test_default_cleaning_drops_duplicates(tmp_path):
    pytest.importorskip("studio.quality")
    rows = alpaca(20) + alpaca(5)
    prepared = prepare(DataRecipe(source=rows_file(tmp_path, rows)))
    assert sum(prepared.rows().values()) == 20
    assert any(s["step"] == "dedupe" or "dup" in s["step"] for s in prepared.steps)
    assert prepared.report["rows"] == 20


@pytest.mark.parametrize("data, words", [
    ({"source": "x.json", "colour": "red"}, "Unknown recipe setting"),
    ({"source": ""}, "names no source"),
    ({"source": "x.json", "split_ratios": [0.5, 0.6, 0.1]}, ""),
    ({"source": "x.json", "split_ratios": "a,b,c"}, ""),
    ({"source": "x.json", "clean": "yes"}, "cannot be used"),
    ({"source": "x.json", "split_seed": -1}, "cannot be used"),
    ("not a mapping", "must be a mapping"),
])
def test_bad_recipes_are_one_sentence(data, words):
    with pytest.raises(UserError) as info:
        DataRecipe.from_dict(data)
    assert words in str(info.value)


def test_bad_clean_or_augment_options_are_one_sentence(tmp_path):
    source = rows_file(tmp_path, alpaca(10))
    with pytest.raises(UserError, match="clean"):
        prepare(DataRecipe(source=source, clean={"scrub": True}))
    with pytest.raises(UserError):
        prepare(DataRecipe(source=source, clean=LIGHT, augment={"methods": ["teleport"], "multiplier": 1}))


def test_a_recipe_file_and_a_dataset_json_both_load(tmp_path, lib):
    source = rows_file(tmp_path, alpaca(20))
    (tmp_path / "r.yaml").write_text(f"source: {source}\nclean: {{dedupe: 'off', conflicts: 'off'}}\n"
                                     "split_ratios: [0.8, 0.1, 0.1]\n")
    prepared = prepare(DataRecipe.load(tmp_path / "r.yaml"))
    assert prepared.rows() == {"train": 16, "val": 2, "test": 2}
    meta = write_prepared(prepared, tmp_path / "out", "mine")
    assert (tmp_path / "out" / "train.jsonl").is_file() and meta["name"] == "mine"
    again = prepare(DataRecipe.load(tmp_path / "out" / "dataset.json"))
    assert again.hashes() == prepared.hashes() == {s: v["sha256"] for s, v in meta["splits"].items()}
    with pytest.raises(UserError, match="not found"):
        DataRecipe.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("source: [unclosed\n")
    with pytest.raises(UserError, match="not a readable"):
        DataRecipe.load(tmp_path / "bad.yaml")


def test_a_library_dataset_can_be_prepared_again(tmp_path, lib):
    first = prepare(DataRecipe(source=rows_file(tmp_path, alpaca(20)), clean=LIGHT,
                               augment={"methods": ["swap"], "multiplier": 1.0}))
    entry = lib.save(first, "base")
    second = prepare(DataRecipe(source=entry["ref"], clean=LIGHT, split_ratios=[0.5, 0.5, 0.0]))
    assert sum(second.rows().values()) == 20  # augmented rows are not prepared twice
    assert second.source["library"] == entry["id"]


def test_bad_files_are_refused_with_the_loaders_sentence(tmp_path):
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"text": "a"}\n{"text": ')
    with pytest.raises(UserError, match="incomplete JSON"):
        prepare(DataRecipe(source=str(broken), clean=LIGHT))
