"""Data is checked before a run exists: bad files get one sentence, long rows are counted and left out.

Bad files are generated in tmp_path. The CLI tests run the real `python -m studio train` and
check exit code 2, one line on stderr, and no run folder.
"""

import bz2
import gzip
import io
import json
import lzma
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from studio import dataload
from studio.config import StudioConfig, apply_overrides
from studio.data import check_training_data, load_rows, report_messages, token_lengths, trainable_records
from studio.errors import UserError
from studio.i18n import Msg, render

ROOT = Path(__file__).resolve().parents[2]
ROWS = [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(20)]


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def refused(path: Path, max_rows: int = 0) -> UserError:
    with pytest.raises(UserError) as info:
        load_rows(str(path), max_rows)
    assert info.value.key == "data.path"
    return info.value


def zipped(member: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
    return buffer.getvalue()


# ---- sniffing: archives and binary files are refused, never unpacked ---------------------------

PACKED = {
    "zip": lambda data: zipped("train.json", data),
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda data: b"\x28\xb5\x2f\xfd" + data,  # the zstd frame magic is what is sniffed
}


@pytest.mark.parametrize("kind", list(PACKED))
@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_compressed_files_under_text_names_are_refused_unopened(tmp_path, monkeypatch, kind, suffix):
    import datasets

    def never(*args, **kwargs):
        raise AssertionError("datasets must never see a packed file")

    monkeypatch.setattr(datasets, "load_dataset", never)
    path = write(tmp_path / f"data{suffix}", PACKED[kind](json.dumps(ROWS).encode()))
    error = refused(path)
    assert f"data{suffix} is packed or compressed ({kind})" in str(error)
    assert "never unpacks" in str(error)


def test_a_zip_bomb_named_json_leaves_no_trace(tmp_path, monkeypatch):
    """Today datasets unpacks such a file into its cache; nothing may be written anywhere."""
    import datasets

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", cache / "downloads")
    monkeypatch.setattr(datasets.config, "EXTRACTED_DATASETS_PATH", cache / "downloads" / "extracted")
    bomb = write(tmp_path / "small.json", zipped("big.json", b"[" + b" " * 20_000_000 + b"]"))
    assert bomb.stat().st_size < 100_000
    refused(bomb)
    assert not cache.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["small.json"]


def test_nul_bytes_anywhere_mean_binary(tmp_path):
    late = write(tmp_path / "late.jsonl", '{"text": "a"}\n' * 2000 + '{"text": "a\x00b"}\n')
    assert "line 2001 holds binary data" in str(refused(late))
    early = write(tmp_path / "early.csv", b"text\n\x00\x01\x02")
    assert "not a text file" in str(refused(early))


def test_a_parquet_file_named_json_and_a_fake_parquet(tmp_path):
    assert "rename it to end in .parquet" in str(refused(write(tmp_path / "p.json", b"PAR1" + b"\x00" * 64)))
    assert "is not a Parquet file" in str(refused(write(tmp_path / "fake.parquet", b'[{"text": "a"}]')))


# ---- encodings, torn lines, empty files -------------------------------------------------------

@pytest.mark.parametrize("name, data, where", [
    ("latin.csv", "instruction,output\nq,a\ncaf\u00e9,a\n".encode("latin-1"),
     "line 3, column 4 has the byte 0xE9"),
    ("latin.jsonl", '{"text": "a"}\n{"text": "caf\u00e9"}\n'.encode("cp1252"),
     "line 2, column 14 has the byte 0xE9"),
    ("latin.json", '[{"text": "a"},\n {"text": "\u00fcber"}]'.encode("latin-1"),
     "line 2, column 12 has the byte 0xFC"),
    ("latin.txt", "ok\nna\u00efve\n".encode("latin-1"), "line 2, column 3 has the byte 0xEF"),
])
def test_non_utf8_text_names_the_line_and_the_byte(tmp_path, name, data, where):
    error = str(refused(write(tmp_path / name, data)))
    assert f"{name} is not UTF-8 text" in error and where in error


def test_utf16_is_named(tmp_path):
    assert "saved as UTF-16" in str(refused(write(tmp_path / "u.json", json.dumps(ROWS).encode("utf-16"))))


def test_a_utf8_bom_is_accepted(tmp_path):
    assert load_rows(str(write(tmp_path / "bom.csv", "\ufefftext\nhello\n"))) == [{"text": "hello"}]


def test_torn_last_jsonl_line_is_named(tmp_path):
    torn = write(tmp_path / "torn.jsonl", '{"text": "a"}\n{"text": "b"}\n{"text": "c')
    assert "line 3, the last line, is incomplete JSON" in str(refused(torn))
    middle = write(tmp_path / "mid.jsonl", '{"text": "a"}\n{"text": b}\n{"text": "c"}\n\n')
    assert "line 2 is not valid JSON" in str(refused(middle))


def test_rows_are_streamed_up_to_max_rows(tmp_path):
    """A JSONL file is read line by line: with max_rows, lines after them are never parsed."""
    path = write(tmp_path / "long.jsonl", '{"text": "a"}\n' * 5 + "not json\n")
    assert len(load_rows(str(path), max_rows=5)) == 5
    refused(path)


@pytest.mark.parametrize("name, data, sentence", [
    ("empty.csv", "", "empty.csv is empty."),
    ("empty.jsonl", "\n\n", "empty.jsonl has no rows."),
    ("blank.json", "  \n ", "blank.json is empty."),
    ("list.json", "[]", "list.json has no rows."),
    ("header.csv", "instruction,output\n", "header.csv has a header line but no rows."),
    ("header.tsv", "instruction\toutput\n\n", "header.tsv has a header line but no rows."),
    ("object.json", '{\n "instruction": "q"\n}\n', "object.json must hold a list of rows ([{…}, {…}])"),
    ("numbers.jsonl", "1\n2\n", "numbers.jsonl, line 1: each row must be an object"),
    ("cells.csv", "a,b\n1,2\n1,2,3\n", "cells.csv: line 3 has 3 cells but the header names 2 columns."),
    ("twice.csv", "a,a\n1,2\n", "the column 'a' appears twice"),
])
def test_empty_and_malformed_files_get_a_sentence(tmp_path, name, data, sentence):
    assert sentence in str(refused(write(tmp_path / name, data)))


# ---- fields whose kind changes between rows ---------------------------------------------------

@pytest.mark.parametrize("rows, where, field, kind, expected", [
    ([{"instruction": "q", "output": "a"}, {"instruction": "q", "output": {"text": "a"}}],
     "line 2", "output", "an object", "text"),
    ([{"instruction": "q", "output": ["a"]}, {"instruction": "q", "output": "a"}],
     "line 2", "output", "text", "a list"),
    ([{"messages": [{"role": "user", "content": "q"}]},
      {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [{"type": "text"}]}]}],
     "line 2", "messages[].content", "a list", "text"),
])
def test_a_field_that_changes_kind_is_named_with_its_row(tmp_path, rows, where, field, kind, expected):
    path = write(tmp_path / "mixed.jsonl", "\n".join(json.dumps(r) for r in rows))
    error = str(refused(path))
    assert f"mixed.jsonl, {where}: field '{field}' holds {kind}, but earlier rows hold {expected}" in error
    as_array = write(tmp_path / "mixed.json", json.dumps(rows))
    assert f"mixed.json, row 2: field '{field}'" in str(refused(as_array))


def test_empty_values_and_numbers_do_not_count_as_a_change(tmp_path):
    rows = [{"instruction": "q", "input": None, "output": 5}, {"instruction": "q", "input": "x", "output": "five"}]
    assert len(load_rows(str(write(tmp_path / "ok.json", json.dumps(rows))))) == 2


@pytest.mark.parametrize("rows, fmt", [
    ([{"conversations": ["hi", "there"]}], "sharegpt"),
    ([{"instruction": "q", "output": "a", "history": [{"q": "a"}]}], "alpaca"),
])
def test_a_row_with_the_wrong_layout_is_named(rows, fmt):
    from studio.data import to_sft_records

    with pytest.raises(UserError, match=f"Row 1 does not have the {fmt} layout") as info:
        to_sft_records(rows)
    assert info.value.key == "data.format"


# ---- size caps ---------------------------------------------------------------------------------

def test_the_file_cap_refuses_before_opening_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_MAX_FILE_MB", "0.001")
    path = write(tmp_path / "big.jsonl", '{"text": "hello"}\n' * 100)

    def no_open(*args, **kwargs):
        raise AssertionError("the file was opened before its size was checked")

    monkeypatch.setattr(dataload, "open", no_open, raising=False)
    assert "big.jsonl is 1.8 KB; the limit is 1 KB per file" in str(refused(path))


def test_the_default_caps_are_200_mb_per_file_and_1_mb_per_field(monkeypatch):
    monkeypatch.delenv("STUDIO_DATA_MAX_FILE_MB", raising=False)
    monkeypatch.delenv("STUDIO_DATA_MAX_FIELD_MB", raising=False)
    assert dataload.limits() == {"file": 200_000_000, "field": 1_000_000}


@pytest.mark.parametrize("name, make, sentence", [
    ("big.jsonl", lambda cell: '{"output": "a"}\n' + json.dumps({"instruction": "q", "output": cell}) + "\n",
     "big.jsonl, line 2: field 'output' is 3 KB; the limit is 2 KB per field"),
    ("big.json", lambda cell: json.dumps([{"instruction": "q", "output": "a"}, {"instruction": "q", "output": cell}]),
     "big.json, row 2: field 'output' is 3 KB; the limit is 2 KB per field"),
    # csv itself stops at the oversized cell (it is never built in memory), so the column is not known
    ("big.csv", lambda cell: f"instruction,output\nq,a\nq,{cell}\n",
     "big.csv, line 3: a cell is larger than the limit of 2 KB per field"),
])
def test_a_field_over_the_cap_is_refused_with_the_cap(tmp_path, monkeypatch, name, make, sentence):
    monkeypatch.setenv("STUDIO_DATA_MAX_FIELD_MB", "0.002")
    assert sentence in str(refused(write(tmp_path / name, make("x" * 3000))))


def test_a_huge_csv_cell_stops_the_csv_reader(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_MAX_FIELD_MB", "0.2")  # above csv's own 128 KB default
    path = write(tmp_path / "huge.csv", "text\nshort\n" + "y" * 300_000 + "\n")
    assert "huge.csv, line 3: a cell is larger than the limit of 200 KB per field" in str(refused(path))


def test_a_field_in_a_nested_message_counts_in_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_MAX_FIELD_MB", "0.003")
    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "好" * 1200}]}]
    error = str(refused(write(tmp_path / "zh.json", json.dumps(rows, ensure_ascii=False))))
    assert "field 'messages' is 3.6 KB; the limit is 3 KB per field" in error


def test_parquet_is_capped_by_its_unpacked_size(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "packed.parquet"
    pq.write_table(pa.table({"text": ["z" * 1000] * 3000}), path, compression="zstd", use_dictionary=False)
    assert path.stat().st_size < 500_000
    monkeypatch.setenv("STUDIO_DATA_MAX_FILE_MB", "1")
    assert "holds 3 MB of data once unpacked; the limit is 1 MB per file" in str(refused(path))
    monkeypatch.setenv("STUDIO_DATA_MAX_FILE_MB", "10")
    assert len(load_rows(str(path), max_rows=10)) == 10


def test_a_hub_dataset_gets_the_same_caps_and_checks(monkeypatch):
    """No Hub here: load_dataset is replaced by a local table to check what happens after it."""
    import datasets

    calls = []

    def fake_load(source, split):
        calls.append((source, split))
        return datasets.Dataset.from_list([{"text": "x" * 1000}] * 50)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setenv("STUDIO_DATA_MAX_FILE_MB", "0.01")
    assert "someone/set is 50.2 KB; the limit is 10 KB per file" in str(refused(Path("someone/set")))
    monkeypatch.setenv("STUDIO_DATA_MAX_FILE_MB", "1")
    monkeypatch.setenv("STUDIO_DATA_MAX_FIELD_MB", "0.0005")
    assert "someone/set, row 1: field 'text' is 1 KB; the limit is 500 bytes" in str(refused(Path("someone/set"), 7))
    assert calls[-1] == ("someone/set", "train[:7]")


# ---- long rows: counted with the model's tokenizer, left out, reported --------------------------

def long_dataset(tmp_path, n_long: int, n_short: int = 20 - 4) -> Path:
    rows = [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(n_short)]
    rows += [{"instruction": f"Tell a long story {i}.", "input": "", "output": "once upon a time " * 40}
             for i in range(n_long)]
    return write(tmp_path / "mixed_lengths.json", json.dumps(rows))


def config(*overrides: str) -> StudioConfig:
    return apply_overrides(StudioConfig(), ["model=demo", *overrides])


def test_the_demo_fits_and_the_report_says_so():
    report = check_training_data(config("data=demo-en", "max_length=128"))
    n = len(load_rows("demo-en"))
    assert n >= 100 and (report["rows"], report["usable"], report["kept"], report["too_long"]) == (n, n, n, 0)
    assert report["format"] == "alpaca" and report["long_rows"] == "left_out"
    assert render(report["summary"], "en") == (f"demo-en: {n} rows, format alpaca, {n} usable. "
                                               "Every row fits in 128 tokens.")


def test_long_rows_are_left_out_and_reported(tmp_path):
    path = long_dataset(tmp_path, n_long=4)
    report = check_training_data(config(f"data={path}", "max_length=64"))
    assert (report["usable"], report["too_long"], report["kept"]) == (20, 4, 16)
    assert report["longest"] > 64
    first, second = report_messages(report)
    assert render(second, "en") == (f"4 of 20 rows are longer than 64 tokens and are left out; raise Max "
                                    f"length to keep them (the longest has {report['longest']}).")
    assert render(report["summary"], "en") == render(first, "en") + " " + render(second, "en")
    assert render(report["summary"], "zh") != render(report["summary"], "en")
    again = Msg.from_dict(report["summary"].to_dict())  # what status.json would keep
    assert render(again, "zh") == render(report["summary"], "zh")
    raised = check_training_data(config(f"data={path}", "max_length=2048"))
    assert (raised["too_long"], raised["kept"]) == (0, 20)


def test_too_few_fitting_rows_to_fill_a_batch_refuse_with_the_max_length_field(tmp_path):
    path = long_dataset(tmp_path, n_long=12, n_short=8)  # 8 fit: 5 train rows after the 7:2:1 split
    with pytest.raises(UserError) as info:
        check_training_data(config(f"data={path}", "max_length=64", "batch_size=8"))
    assert info.value.key == "train.max_length"
    assert str(info.value).startswith("Only 8 of 20 rows fit in 64 tokens: too few to train on")
    report = check_training_data(config(f"data={path}", "max_length=64", "batch_size=4"))
    assert (report["too_long"], report["kept"]) == (12, 8)  # most rows left out, and said so


def test_plain_text_is_cut_not_left_out(tmp_path):
    path = write(tmp_path / "text.jsonl", "\n".join(json.dumps({"text": "word " * n}) for n in (5, 300, 10)))
    report = check_training_data(config(f"data={path}", "max_length=64"))
    assert (report["format"], report["long_rows"], report["too_long"], report["kept"]) == ("text", "cut", 1, 3)
    summary = render(report["summary"], "en")
    assert "1 of 3 texts are longer than 64 tokens; only their first 64 tokens are used" in summary


def test_a_changed_file_is_checked_again(tmp_path):
    path = write(tmp_path / "d.json", json.dumps(ROWS[:10]))
    assert check_training_data(config(f"data={path}"))["rows"] == 10
    write(path, json.dumps(ROWS))
    assert check_training_data(config(f"data={path}"))["rows"] == 20


def test_lengths_are_what_trl_trains_on_and_prepare_data_keeps_what_was_reported(tmp_path):
    """The report and the training agree: prepare_data writes exactly the rows that fit, and
    TRL's own tokenization of them has the lengths the check counted (so nothing is cut)."""
    from trl import SFTConfig, SFTTrainer

    from studio.models import load_model
    from studio.runs import RunStore
    from studio.train import prepare_data

    path = long_dataset(tmp_path, n_long=4)
    cfg = config(f"data={path}", "max_length=64", "val_size=0.2", "test_size=0.1")
    report = check_training_data(cfg)
    run = RunStore(tmp_path / "home").create(cfg)
    train_ds, eval_ds = prepare_data(cfg, run)
    written = [json.loads(line) for name in ("train", "val", "test")
               for line in (run.path / "data" / f"{name}.jsonl").read_text().splitlines()]
    assert len(written) == report["kept"] == 16
    assert not any("once upon a time" in r["completion"][0]["content"] for r in written)

    model, tokenizer = load_model(cfg, {"precision": "fp32", "gradient_checkpointing": False, "device": "cpu"})
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_length=64, report_to="none", use_cpu=True,
                     bf16=False, dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, processing_class=tokenizer)
    trl_lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    assert trl_lengths == token_lengths(list(train_ds), tokenizer)
    records, _ = trainable_records(cfg)
    assert max(trl_lengths) <= 64 and len(records) == 16


# ---- the CLI: one line, exit 2, no run folder ---------------------------------------------------

def bad_inputs(tmp: Path) -> dict[str, tuple[str, str, dict]]:
    """name -> (data= value, expected words, extra environment)."""
    mixed = [{"instruction": "q", "output": "a"}, {"instruction": "q", "output": {"text": "a"}}]
    return {
        "missing": ("/nonexistent.json", "Dataset not found", {}),
        "empty csv": (str(write(tmp / "empty.csv", "")), "empty.csv is empty", {}),
        "header-only csv": (str(write(tmp / "h.csv", "instruction,output\n")), "a header line but no rows", {}),
        "torn jsonl": (str(write(tmp / "t.jsonl", '{"text": "a"}\n{"text": "b')), "line 2, the last line", {}),
        "not utf-8": (str(write(tmp / "l.csv", "text\ncaf\u00e9\n".encode("latin-1"))), "line 2, column 4", {}),
        "zip named json": (str(write(tmp / "z.json", zipped("a.json", json.dumps(ROWS).encode()))), "(zip)", {}),
        "kind change": (str(write(tmp / "k.jsonl", "\n".join(map(json.dumps, mixed)))), "line 2: field 'output'", {}),
        "field cap": (str(write(tmp / "f.json", json.dumps([{"text": "x" * 3000}]))), "the limit is 2 KB per field",
                      {"STUDIO_DATA_MAX_FIELD_MB": "0.002"}),
        "long rows": (str(long_dataset(tmp, n_long=12, n_short=8)), "Only 8 of 20 rows fit in 64 tokens: too few", {}),
    }


BAD_INPUTS = ["missing", "empty csv", "header-only csv", "torn jsonl", "not utf-8", "zip named json",
              "kind change", "field cap", "long rows"]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_studio_train_refuses_bad_data_with_one_line_and_no_run(tmp_path, case):
    data, words, extra = bad_inputs(tmp_path)[case]
    home = tmp_path / "home"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "STUDIO_LANG": "en", **extra}
    result = subprocess.run([sys.executable, "-m", "studio", "train", "recipes/demo.yaml", f"data={data}",
                             "max_length=64", "--home", str(home)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr[-2000:]
    runs = home / "runs"
    assert not runs.exists() or not any(runs.iterdir())


# ---- caches under the studio home ---------------------------------------------------------------

def test_caches_move_under_the_studio_home(tmp_path):
    """Run in a fresh process: the caches are process-wide state."""
    script = """
import os, sys
from pathlib import Path
import datasets, huggingface_hub
from studio.paths import use_home_caches
home = Path(sys.argv[1])
chosen = use_home_caches(home)
from datasets import config
from huggingface_hub import constants
assert config.HF_DATASETS_CACHE == home / "cache" / "datasets", config.HF_DATASETS_CACHE
assert str(config.EXTRACTED_DATASETS_PATH).startswith(str(home / "cache" / "datasets"))
assert constants.HF_HUB_CACHE == str(home / "cache" / "hub") == os.environ["HF_HUB_CACHE"]
assert chosen["HF_XET_CACHE"] == str(home / "cache" / "xet")
other = use_home_caches(home / "other")  # a second home replaces the first
assert constants.HF_HUB_CACHE == str(home / "other" / "cache" / "hub")
os.environ["HF_HUB_CACHE"] = "/chosen/by/user"  # a cache the user set is kept
assert use_home_caches(home)["HF_HUB_CACHE"] == "/chosen/by/user"
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") or k == "HF_HUB_OFFLINE"}
    home = (tmp_path / "home").resolve()
    result = subprocess.run([sys.executable, "-c", script, str(home)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
