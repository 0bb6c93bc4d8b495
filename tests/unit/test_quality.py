"""The quality report: each check on small hand-made records (counts and example rows), near
duplicates against a threshold, lengths with the demo tokenizer, and the table path
(inspect_table) agreeing with the records path (quality_report)."""

import json
import random

import pytest

from studio.dataload import load_table
from studio.formats import convert
from studio.i18n import render
from studio.quality import (conflict_groups, duplicate_groups, find_placeholders, histogram, inspect_table,
                            near_duplicate_groups, quality_report, row_languages, Texts)


def sft(prompt, answer, row=None, system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    record = {"prompt": messages, "completion": [{"role": "assistant", "content": answer}]}
    if row is not None:
        record["_row"] = row
    return record


def finding(report, code):
    found = [f for f in report["findings"] if f["code"] == code]
    return found[0] if found else None


LONG = ("Explain how the heart pumps blood through the body to the lungs and back again, step by step, "
        "for a student who is new to biology and wants a clear picture")


# ---- each check -----------------------------------------------------------------------------------

def test_empty_fields_are_counted_with_their_rows():
    call = {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
                                                                "function": {"name": "f", "arguments": {}}}]}
    records = [sft("q", "a", 1), sft("q2", "   ", 2), sft(" ", "a", 3), {"text": "\n"},
               dict(sft("q3", ""), completion=[call]),  # a tool call is not blank
               {"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "},
                           {"role": "user", "content": "again"}],
                "completion": [{"role": "assistant", "content": "ok"}]}]  # a blank turn inside
    report = quality_report(records)
    empty = finding(report, "empty")
    assert (empty["count"], empty["examples"], empty["rows"][:3]) == (4, [1, 2, 3, 5], [2, 3, None])
    assert render(empty["message"], "en") == "4 of 6 rows have an empty or whitespace-only prompt, answer or turn."
    assert "4" in render(empty["message"], "zh")


def test_exact_duplicates_count_the_repeats_and_keep_the_groups():
    records = [sft("q1", "a"), sft("q2", "b"), sft("q1", "a"), sft("q1", "a "), sft("q2", "c")]
    assert duplicate_groups(records) == [[0, 2, 3]]
    dup = finding(quality_report(records), "duplicate")
    assert (dup["count"], dup["examples"], dup["groups"]) == (2, [2, 3], [[0, 2, 3]])
    assert "2 rows repeat an earlier row exactly" in render(dup["message"], "en")


def test_a_system_prompt_makes_rows_differ():
    assert duplicate_groups([sft("q", "a"), sft("q", "a", system="Be brief.")]) == []


def test_conflicts_are_the_same_prompt_with_different_answers():
    records = [sft("q", "yes"), sft("other", "x"), sft("q", "no"), sft("q", "yes"), sft("other", "x"),
               {"text": "a"}, {"text": "b"}]
    assert conflict_groups(records) == [[0, 2, 3]]
    found = finding(quality_report(records), "conflict")
    assert (found["count"], found["examples"]) == (3, [0, 2, 3])
    assert "1 prompts with conflicting answers" in render(found["message"], "en")


def test_near_duplicates_follow_the_threshold():
    records = [sft(LONG, "answer one", 1), sft(LONG + " please", "answer one", 2),
               sft("What is the capital city of France and why is it famous", "Paris", 3),
               sft(LONG, "answer one", 4)]
    assert near_duplicate_groups(records, 0.7) == [[0, 1, 3]]
    assert near_duplicate_groups(records, 0.99) == [[0, 3]]  # exact copies are always together
    report = quality_report(records, near_threshold=0.7)
    near = finding(report, "near_duplicate")
    # the exact copy (row 3) counts as a duplicate, not again as a near duplicate
    assert (near["count"], near["examples"], near["groups"]) == (1, [1], [[0, 1, 3]])
    assert finding(report, "duplicate")["examples"] == [3]
    assert "at least 70% the same text" in render(near["message"], "en")


def test_near_duplicates_in_chinese():
    base = "请解释心脏如何把血液输送到全身，再回到肺部，一步一步地说明，给刚开始学习生物的学生一个清楚的图景。"
    records = [sft(base, "好的"), sft(base.replace("学生", "同学"), "好的"), sft("今天天气怎么样？适合去公园散步吗？", "适合")]
    assert near_duplicate_groups(records, 0.7) == [[0, 1]]


def test_near_duplicates_find_most_planted_copies_and_no_false_groups():
    rng = random.Random(3)
    words = [f"w{i}" for i in range(3000)]
    records = [sft(" ".join(rng.choices(words, k=12)), " ".join(rng.choices(words, k=60))) for _ in range(400)]
    planted = []
    for i in range(0, 400, 10):  # 40 copies with one word of the answer changed
        answer = records[i]["completion"][0]["content"].split()
        answer[rng.randrange(len(answer))] = "changed"
        records.append(sft(records[i]["prompt"][0]["content"], " ".join(answer)))
        planted.append((i, len(records) - 1))
    groups = near_duplicate_groups(records, 0.8)
    together = {tuple(g) for g in groups}
    found = sum(pair in together for pair in planted)
    assert found >= 36, found
    assert all(len(g) == 2 for g in groups)


def test_invalid_characters_by_kind():
    records = [sft("fine", "text"), sft("tab\tand newline\n ok", "yes"), sft("bell\x07", "a"),
               sft("broken \ufffd", "a"), sft("caf\u00c3\u00a9", "ok"), sft("it\u00e2\u20ac\u2122s", "x"),
               sft("\u00e4\u00b8\u00ad\u00e6\u2013\u2021", "x"), sft("Señor café naïve", "über")]
    found = finding(quality_report(records), "invalid_chars")
    assert (found["count"], found["examples"]) == (5, [2, 3, 4, 5, 6])
    assert found["kinds"] == {"control": 1, "replacement": 1, "mojibake": 3}
    text = render(found["message"], "en")
    assert "1 with control characters" in text and "3 with broken encoding" in text


@pytest.mark.parametrize("text, expected", [
    ("Dear {{name}}, your order {{ order.id }} is ready", ["{{name}}", "{{ order.id }}"]),
    ("Hello {name} and ${city}", ["{name}", "${city}"]),
    ("Call [NAME] at [PHONE NUMBER]", ["[NAME]", "[PHONE NUMBER]"]),
    ('JSON {"a": 1}, LaTeX \\frac{a}{b}, list [1] and [a], set {1, 2}', []),
    ("code: print(f'{x}') is f-string", ["{x}"]),
    ("", []),
])
def test_find_placeholders(text, expected):
    assert find_placeholders(text) == expected


def test_placeholders_are_counted_with_their_names():
    records = [sft("Write to {{name}}", "Dear {{name}},"), sft("plain", "text"), sft("Hi [NAME]", "ok"),
               sft("JSON", '{"a": 1}')]
    found = finding(quality_report(records), "placeholder")
    assert (found["count"], found["examples"]) == (2, [0, 2])
    assert found["placeholders"] == {"{{name}}": 1, "[NAME]": 1}
    assert "{{name}}" in render(found["message"], "en") and "{{name}}" in render(found["message"], "zh")


def test_languages_by_script():
    records = [sft("Hello there", "General Kenobi"), sft("你好，世界", "好的"), sft("こんにちは世界", "はい"),
               sft("안녕하세요", "네"), sft("Привет мир", "да"), sft("12345", "!!!"), sft("Hello", "world")]
    assert row_languages(Texts.of_records(records)) == ["en", "zh", "ja", "ko", "ru", "", "en"]
    report = quality_report(records)
    assert report["languages"] == {"en": 2, "zh": 1, "ja": 1, "ko": 1, "ru": 1}
    mix = finding(report, "language_mix")
    assert (mix["count"], mix["examples"]) == (4, [1, 2, 3, 4])
    assert finding(quality_report([sft("Hello", "world"), sft("Good", "day")]), "language_mix") is None


def test_a_clean_dataset_has_no_findings_and_a_character_histogram():
    records = [sft(f"Question number {i}?", f"Answer {i} is here.") for i in range(30)]
    report = quality_report(records)
    assert report["rows"] == 30 and report["findings"] == [] and report["lengths"] is None
    assert report["unit"] == "characters"
    assert sum(b["count"] for b in report["histogram"]) == 30 and not any(b["over"] for b in report["histogram"])


def test_histogram_has_max_length_as_an_edge():
    bins = histogram([1, 5, 60, 99, 100, 101, 350], max_length=100)
    assert sum(b["count"] for b in bins) == 7
    assert any(b["end"] == 101 for b in bins) and any(b["start"] == 101 for b in bins)
    assert all(b["over"] == (b["start"] > 100) for b in bins)
    assert sum(b["count"] for b in bins if b["over"]) == 2  # 100 tokens fit in max_length 100
    assert histogram([]) == []


# ---- lengths with the model's tokenizer ----------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    from studio.models import load_tokenizer
    from studio.paths import DEMO_MODEL

    return load_tokenizer(str(DEMO_MODEL), False)


def test_too_long_rows_and_whether_their_answer_would_be_lost(tokenizer):
    records = [sft("short", "ok"), sft("short question", "word " * 200), sft("word " * 200, "ok"),
               {"text": "word " * 300}]
    report = quality_report(records, tokenizer=tokenizer, max_length=64)
    assert report["unit"] == "tokens" and len(report["lengths"]) == 4 and report["lengths"][0] < 64
    found = finding(report, "too_long")
    assert (found["count"], found["examples"], found["answers_lost"], found["lost_examples"]) == (3, [1, 2, 3], 1, [2])
    text = render(found["message"], "en")
    assert "3 of 4 rows are longer than 64 tokens" in text and "1 would lose their whole answer and 1 the end" in text
    assert sum(b["count"] for b in report["histogram"] if b["over"]) == 3


def test_tools_are_counted_in_the_length(tokenizer):
    tool = {"type": "function", "function": {"name": "weather", "description": "Weather " * 30,
                                             "parameters": {"type": "object", "properties": {}}}}
    plain = sft("What is the weather?", "Sunny.")
    report = quality_report([plain, dict(plain, tools=[tool])], tokenizer=tokenizer, max_length=4096)
    assert report["lengths"][1] > report["lengths"][0]


# ---- the table path agrees with the records path ---------------------------------------------------

def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def same_findings(a, b):
    strip = ("message",)
    return ([{k: v for k, v in f.items() if k not in strip} for f in a["findings"]]
            == [{k: v for k, v in f.items() if k not in strip} for f in b["findings"]])


ALPACA = [
    {"instruction": "Add.", "input": "2 and 3", "output": "5"},
    {"instruction": "Add.", "input": "2 and 3", "output": "5"},
    {"instruction": "Add.", "input": "2 and 3", "output": "6"},
    {"instruction": "Greet {{name}}", "input": "", "output": "Hello"},
    {"instruction": "  ", "input": "", "output": "dropped: no question"},
    {"instruction": "你好", "input": None, "output": "你好！", "system": "Be kind."},
    {"instruction": LONG, "input": "", "output": "answer one"},
    {"instruction": LONG + " please", "input": "", "output": "answer one"},
]


@pytest.mark.parametrize("rows, system", [
    (ALPACA, ""),
    (ALPACA, "You are a helpful assistant."),
    ([{"prompt": "q", "completion": "a"}, {"prompt": "q", "completion": "b"}, {"prompt": "", "completion": "x"},
      {"prompt": "Hi [NAME]", "completion": "ok"}], ""),
    ([{"text": "hello world"}, {"text": "hello world"}, {"text": " "}, {"text": "caf\u00c3\u00a9"}], ""),
    ([{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
      {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "b"}]},
      {"conversations": [{"from": "human", "value": "only a question"}]}], ""),
])
def test_inspect_table_agrees_with_quality_report_of_the_records(tmp_path, rows, system):
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    detection, records = convert(rows, system=system)
    expected = quality_report(records, near_threshold=0.7)
    found_detection, report = inspect_table(load_table(str(path)), system=system, near_threshold=0.7, batch=2)
    assert found_detection.format == detection.format
    assert report["rows"] == expected["rows"] == len(records)
    assert same_findings(report, expected), (report["findings"], expected["findings"])
    assert report["languages"] == expected["languages"] and report["histogram"] == expected["histogram"]


def test_inspect_table_on_every_shared_fixture(shared):
    for name in ("alpaca_en_demo.json", "alpaca_zh_demo.json", "c4_demo.jsonl", "dpo_en_demo.json",
                 "glaive_toolcall_en_demo.json", "v1_sft_demo.jsonl"):
        table = load_table(str(shared / "data" / name))
        detection, report = inspect_table(table)
        _, records = convert(load_table(str(shared / "data" / name)).to_pylist())
        assert report["rows"] == len(records), name
        assert same_findings(report, quality_report(records)), name


def test_inspect_table_names_a_bad_row_like_convert(tmp_path):
    from studio.errors import UserError

    path = write_jsonl(tmp_path / "bad.jsonl", [{"conversations": [{"from": "human", "value": "q"},
                                                                   {"from": "gpt", "value": "a"}]},
                                                {"conversations": [{"from": "alien", "value": "q"}]}])
    with pytest.raises(UserError, match="Row 2 does not have the sharegpt layout"):
        inspect_table(load_table(str(path)))
