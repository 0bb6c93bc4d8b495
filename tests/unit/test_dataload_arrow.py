"""load_table: every file type straight into Arrow, the same sentences as read_rows for bad input.

Files are generated in tmp_path. "Arrow path" tests make the careful Python reader fail loudly,
so they prove the file did not go through it; bad-input tests check the sentence load_table
gives (which the careful reader words) and its key.
"""

import io
import json
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from studio import dataload
from studio.data import load_rows
from studio.dataload import load_table, table_rows
from studio.errors import UserError

ROWS = [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(5)]


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def jsonl(rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def refused(path: Path) -> str:
    with pytest.raises(UserError) as info:
        load_table(str(path))
    assert info.value.key == "data.path"
    return str(info.value)


@pytest.fixture
def no_python_reader(monkeypatch):
    """Fail if the careful (Python) reader is used: the file must go through Arrow."""
    def never(*args, **kwargs):
        raise AssertionError("the careful reader was used")

    monkeypatch.setattr(dataload, "read_rows", never)


# ---- every file type, through Arrow ---------------------------------------------------------------

def test_each_file_type_loads_through_arrow_with_the_rows_read_rows_gives(tmp_path, monkeypatch):
    files = {
        "a.jsonl": jsonl(ROWS),
        "lines.json": jsonl(ROWS),  # JSON lines under a .json name, as datasets reads it
        "a.csv": "instruction,input,output\n" + "".join(f"{r['instruction']},,{r['output']}\n" for r in ROWS),
        "a.tsv": "instruction\tinput\toutput\n" + "".join(f"{r['instruction']}\t\t{r['output']}\n" for r in ROWS),
    }
    for name, text in files.items():
        write(tmp_path / name, text)
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "a.parquet")
    expected = {name: load_rows(str(tmp_path / name)) for name in [*files, "a.parquet"]}

    def never(*args, **kwargs):
        raise AssertionError("the careful reader was used")

    monkeypatch.setattr(dataload, "read_rows", never)
    for name, rows in expected.items():
        table = load_table(str(tmp_path / name))
        assert isinstance(table, pa.Table) and table.num_rows == 5, name
        assert table_rows(table) == rows, name


def test_text_files_become_one_row_per_non_blank_line(tmp_path, no_python_reader):
    path = write(tmp_path / "a.txt", "\ufefffirst line\r\n\n   \nsecond line\nthird")
    assert table_rows(load_table(str(path))) == [{"text": "first line"}, {"text": "second line"}, {"text": "third"}]


def test_a_json_array_is_read_by_python_and_becomes_a_table(tmp_path):
    path = write(tmp_path / "a.json", json.dumps(ROWS))
    assert table_rows(load_table(str(path))) == ROWS


def test_bundled_names_and_max_rows():
    assert load_table("demo-en").num_rows == len(load_rows("demo-en"))
    assert load_table("demo-en", max_rows=7).num_rows == 7


def test_csv_quoted_newlines_bom_and_blank_rows(tmp_path, no_python_reader):
    path = write(tmp_path / "q.csv", '\ufeffinstruction,output\n"two\nlines","a, b"\n,\n\n q ,x\n')
    assert table_rows(load_table(str(path))) == [{"instruction": "two\nlines", "output": "a, b"},
                                                 {"instruction": " q ", "output": "x"}]


def test_large_files_are_parsed_in_pieces_and_their_types_merged(tmp_path, monkeypatch, no_python_reader):
    """A column empty in the first piece and text later, objects that gain keys later on."""
    monkeypatch.setattr(dataload, "JSON_PIECE", 256)
    rows = [{"prompt": f"q{i}", "system": None, "messages": [{"role": "user", "content": "x"}]} for i in range(20)]
    rows += [{"prompt": f"q{i}", "system": "Be brief.", "extra": 1,
              "messages": [{"role": "assistant", "content": "", "tool_calls": [
                  {"type": "function", "function": {"name": "f", "arguments": {"city": "Paris"}}}]}]}
             for i in range(20)]
    table = load_table(str(write(tmp_path / "big.jsonl", jsonl(rows))))
    assert table.column("prompt").num_chunks > 1
    got = table_rows(table)
    assert got[25]["system"] == "Be brief." and got[0]["system"] is None and got[0]["extra"] is None
    # keys an object did not have are not invented inside nested values
    assert got[0]["messages"] == [{"role": "user", "content": "x"}]
    assert got[25]["messages"][0]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}


def test_dates_stay_text(tmp_path, no_python_reader):
    rows = [{"text": "2020-01-01", "meta": {"when": "2020-01-01T10:00:00"}}]
    assert table_rows(load_table(str(write(tmp_path / "d.jsonl", jsonl(rows))))) == rows


def test_numbers_and_text_in_one_column_load_as_text(tmp_path):
    """Arrow refuses 5 then "five"; the careful reader accepts it and the column becomes text."""
    rows = [{"instruction": "q", "input": None, "output": 5}, {"instruction": "q", "input": "x", "output": "five"}]
    table = load_table(str(write(tmp_path / "mixed.jsonl", jsonl(rows))))
    assert table.column("output").to_pylist() == ["5", "five"]


# ---- bad input: the same sentences as read_rows -----------------------------------------------------

def zipped(member: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, data)
    return buffer.getvalue()


@pytest.mark.parametrize("name, data, sentence", [
    ("bad.json", "[{\"a\": 1},\n {not json}]", "bad.json is not valid JSON: line 2, column 3"),
    ("bad.jsonl", '{"a": "x"}\n{"a": x}\n{"a": "y"}\n', "bad.jsonl: line 2 is not valid JSON (column 7"),
    ("torn.jsonl", '{"text": "a"}\n{"text": "b"}\n{"text": "c', "line 3, the last line, is incomplete JSON"),
    ("kinds.jsonl", '{"output": "a"}\n{"output": {"text": "a"}}\n',
     "kinds.jsonl, line 2: field 'output' holds an object, but earlier rows hold text"),
    ("nested.jsonl", '{"messages": [{"role": "user", "content": "q"}]}\n'
                     '{"messages": [{"role": "user", "content": [{"type": "text"}]}]}\n',
     "field 'messages[].content' holds a list"),
    ("empty.jsonl", "", "empty.jsonl is empty."),
    ("blank.jsonl", "\n \n", "blank.jsonl has no rows."),
    ("empty.csv", "", "empty.csv is empty."),
    ("header.csv", "instruction,output\n", "header.csv has a header line but no rows."),
    ("header.tsv", "instruction\toutput\n\n", "header.tsv has a header line but no rows."),
    ("cells.csv", "a,b\n1,2\n1,2,3\n", "cells.csv: line 3 has 3 cells but the header names 2 columns."),
    ("twice.csv", "a,a\n1,2\n", "the column 'a' appears twice"),
    ("latin.jsonl", '{"text": "a"}\n{"text": "caf\u00e9"}\n'.encode("latin-1"),
     "latin.jsonl is not UTF-8 text: line 2, column 14 has the byte 0xE9"),
    ("latin.csv", "text\nok\ncaf\u00e9\n".encode("latin-1"), "line 3, column 4 has the byte 0xE9"),
    ("latin.txt", "ok\nna\u00efve\n".encode("latin-1"), "line 2, column 3 has the byte 0xEF"),
    ("nul.jsonl", '{"text": "a"}\n{"text": "a\x00b"}\n', "line 2 holds binary data"),
    ("zip.json", zipped("a.json", json.dumps(ROWS).encode()), "zip.json is packed or compressed (zip)"),
    ("object.json", '{\n "instruction": "q"\n}\n', "must hold a list of rows"),
    ("numbers.jsonl", "1\n2\n", "numbers.jsonl, line 1: each row must be an object"),
])
def test_bad_files_get_the_careful_readers_sentence(tmp_path, name, data, sentence):
    assert sentence in refused(write(tmp_path / name, data))


@pytest.mark.parametrize("name, make, sentence", [
    ("big.jsonl", lambda cell: jsonl([{"output": "a"}, {"instruction": "q", "output": cell}]),
     "big.jsonl, line 2: field 'output' is 3 KB; the limit is 2 KB per field"),
    ("big.csv", lambda cell: f"instruction,output\nq,a\nq,{cell}\n",
     "big.csv, line 3: a cell is larger than the limit of 2 KB per field"),
    ("deep.jsonl", lambda cell: jsonl([{"messages": [{"role": "user", "content": "q"}]},
                                       {"messages": [{"role": "user", "content": "q"},
                                                     {"role": "assistant", "content": cell}]}]),
     "deep.jsonl, line 2: field 'messages' is 3 KB; the limit is 2 KB per field"),
    ("big.txt", lambda cell: f"short\n{cell}\n", "big.txt, line 2: field 'text' is 3 KB"),
])
def test_a_cell_over_the_field_cap_is_found_on_the_columns(tmp_path, monkeypatch, name, make, sentence):
    monkeypatch.setenv("STUDIO_DATA_MAX_FIELD_MB", "0.002")
    assert sentence in refused(write(tmp_path / name, make("x" * 3000)))


def test_the_field_cap_on_a_parquet_file_names_the_row(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_MAX_FIELD_MB", "0.002")
    pq.write_table(pa.table({"text": ["a", "b", "x" * 3000]}), tmp_path / "p.parquet")
    assert "p.parquet, row 3: field 'text' is 3 KB; the limit is 2 KB per field" in refused(tmp_path / "p.parquet")


def test_the_file_caps(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_MAX_FILE_MB", "0.001")
    assert "big.jsonl is 1.8 KB; the limit is 1 KB per file" in refused(
        write(tmp_path / "big.jsonl", '{"text": "hello"}\n' * 100))
    pq.write_table(pa.table({"text": ["z" * 1000] * 30}), tmp_path / "p.parquet", compression="zstd",
                   use_dictionary=False)
    monkeypatch.setenv("STUDIO_DATA_MAX_FILE_MB", "0.02")
    assert "KB of data once unpacked; the limit is 20 KB per file" in refused(tmp_path / "p.parquet")


def test_missing_sources_and_folders(tmp_path):
    with pytest.raises(UserError, match="Dataset not found"):
        load_table(str(tmp_path / "missing.jsonl"))
    assert "is a folder" in refused(tmp_path)


# ---- Hub ids (no network: the id is pointed at a local dataset folder) -------------------------------

def test_a_hub_id_with_config_and_split_loads_through_datasets(tmp_path, monkeypatch):
    import datasets

    folder = tmp_path / "owner_set"
    (folder / "data").mkdir(parents=True)
    write(folder / "data" / "train.jsonl", jsonl(ROWS))
    write(folder / "data" / "test.jsonl", jsonl(ROWS[:2]))
    real = datasets.load_dataset
    calls = []

    def local(source, name=None, split=None, **kwargs):  # the Hub id, answered from the folder
        calls.append((source, name, split))
        return real(str(folder), name, split=split, cache_dir=str(tmp_path / "cache"))

    monkeypatch.setattr(datasets, "load_dataset", local)
    table = load_table("owner/set", split="test")
    assert table_rows(table) == ROWS[:2]
    assert load_table("owner/set", config=None, max_rows=3).num_rows == 3
    assert calls == [("owner/set", None, "test"), ("owner/set", None, "train[:3]")]
    monkeypatch.setenv("STUDIO_DATA_MAX_FIELD_MB", "0.000005")
    assert "owner/set, row 1: field 'instruction' is 11 bytes; the limit is 5 bytes" in str(
        pytest.raises(UserError, load_table, "owner/set").value)


def test_an_unreachable_hub_id_is_one_sentence(monkeypatch):
    """Online as far as the probe knows, then the load fails: its first line, in one sentence.
    (Offline mode, which the tests run in, has its own sentence: the second half.)"""
    import datasets

    from studio import hub

    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hub\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    monkeypatch.setattr(hub, "is_offline", lambda: False)
    monkeypatch.setattr(hub, "hub_status", lambda *a, **k: "online")
    with pytest.raises(UserError) as info:
        load_table("owner/none", config="en", split="train")
    assert str(info.value) == "Could not load the Hub dataset 'owner/none': Couldn't reach the Hub"
    monkeypatch.setattr(hub, "is_offline", lambda: True)
    with pytest.raises(UserError) as info:
        load_table("owner/none", config="en", split="train")
    assert "HF_HUB_OFFLINE" in str(info.value) and "\n" not in str(info.value)
