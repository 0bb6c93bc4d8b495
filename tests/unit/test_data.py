import json

import pytest

from studio.data import detect_format, load_rows, split_rows, to_sft_records
from studio.errors import UserError


def test_alpaca_becomes_prompt_completion_with_system_and_history():
    rows = [{"instruction": "Add.", "input": "2 and 3", "output": "5", "system": "Be brief.",
             "history": [["Hi", "Hello"]]}]
    (rec,) = to_sft_records(rows)
    assert [m["role"] for m in rec["prompt"]] == ["system", "user", "assistant", "user"]
    assert rec["prompt"][-1]["content"] == "Add.\n\n2 and 3"
    assert rec["completion"] == [{"role": "assistant", "content": "5"}]


@pytest.mark.parametrize("row, fmt", [
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}, "sharegpt"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, "messages"),
    ({"prompt": "q", "completion": "a"}, "prompt_completion"),
    ({"prompt": "q", "chosen": "a", "rejected": "b"}, "preference"),
])
def test_formats_are_detected_and_converted(row, fmt):
    assert detect_format([row]) == fmt
    (rec,) = to_sft_records([row])
    assert rec["prompt"][-1] == {"role": "user", "content": "q"}
    assert rec["completion"][0]["content"] == "a"


def test_text_format():
    assert to_sft_records([{"text": "hello"}, {"text": " "}]) == [{"text": "hello"}]


def test_unknown_columns_are_explained():
    with pytest.raises(UserError, match="Could not recognise") as info:
        detect_format([{"foo": 1}])
    assert info.value.key == "data.format"


def test_split_is_7_2_1_and_deterministic():
    rows = list(range(100))
    train, val, test = split_rows(rows, 0.2, 0.1, seed=1)
    assert (len(train), len(val), len(test)) == (70, 20, 10)
    assert split_rows(rows, 0.2, 0.1, seed=1) == (train, val, test)
    assert sorted(train + val + test) == rows


def test_bad_files(tmp_path):
    empty = tmp_path / "e.json"
    empty.write_text("")
    with pytest.raises(UserError, match="empty"):
        load_rows(str(empty))
    broken = tmp_path / "b.json"
    broken.write_text("[{not json")
    with pytest.raises(UserError, match=r"b.json is not valid JSON: line 1, column 3") as info:
        load_rows(str(broken))
    assert info.value.key == "data.path"
    with pytest.raises(UserError, match="use a .json"):
        (tmp_path / "x.xlsx").write_text("hi")
        load_rows(str(tmp_path / "x.xlsx"))
    with pytest.raises(UserError, match="not found"):
        load_rows(str(tmp_path / "missing.json"))


def test_file_types(tmp_path):
    rows = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(5)]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    import pandas as pd
    pd.DataFrame(rows).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame(rows).to_csv(tmp_path / "a.tsv", index=False, sep="\t")
    pd.DataFrame(rows).to_parquet(tmp_path / "a.parquet")
    for name in ["a.json", "a.jsonl", "a.csv", "a.tsv", "a.parquet"]:
        assert len(to_sft_records(load_rows(str(tmp_path / name)))) == 5, name
    (tmp_path / "a.txt").write_text("first line\n\nsecond line\n")
    assert load_rows(str(tmp_path / "a.txt")) == [{"text": "first line"}, {"text": "second line"}]


def test_csv_quoted_cells_span_lines_and_jsonl_named_json_still_loads(tmp_path):
    (tmp_path / "q.csv").write_text('instruction,output\n"two\nlines","a, b"\n')
    assert load_rows(str(tmp_path / "q.csv")) == [{"instruction": "two\nlines", "output": "a, b"}]
    (tmp_path / "lines.json").write_text('{"text": "a"}\n{"text": "b"}\n')
    assert load_rows(str(tmp_path / "lines.json")) == [{"text": "a"}, {"text": "b"}]


FIXTURE_FORMATS = {
    "alpaca_en_demo.json": "alpaca", "alpaca_zh_demo.json": "alpaca", "c4_demo.jsonl": "text",
    "dpo_en_demo.json": "preference", "glaive_toolcall_en_demo.json": "sharegpt",
    "v1_sft_demo.jsonl": "messages",
}


def test_every_shared_fixture_is_detected_as_before(shared):
    files = sorted(p.name for p in (shared / "data").iterdir() if p.suffix in (".json", ".jsonl"))
    assert files == sorted(FIXTURE_FORMATS)  # a new fixture needs its expected format here
    for name, fmt in FIXTURE_FORMATS.items():
        rows = load_rows(str(shared / "data" / name))
        assert detect_format(rows) == fmt, name
        assert len(to_sft_records(rows, fmt)) == len(rows), name
    recs = to_sft_records(load_rows(str(shared / "data" / "dpo_en_demo.json"), 5))
    assert len(recs) == 5 and recs[0]["completion"][0]["content"]
