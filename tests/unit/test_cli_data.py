"""`studio data inspect | prepare | list`: JSON on every shared fixture, one-line errors on bad input.

Most cases run `studio.cli.main` in this process (stdout/stderr captured); one runs the real
`python -m studio` to show that bad input ends with exit 2, one line and no traceback.
"""

import gzip
import json
import os
import subprocess
import sys

import pytest

from studio.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE_FORMATS = {
    "alpaca_en_demo.json": "alpaca", "alpaca_zh_demo.json": "alpaca", "c4_demo.jsonl": "text",
    "dpo_en_demo.json": "preference", "glaive_toolcall_en_demo.json": "sharegpt",
    "v1_sft_demo.jsonl": "messages",
}
ROWS = [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(20)]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(path, data):
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return str(path)


@pytest.mark.parametrize("name", sorted(FIXTURE_FORMATS))
def test_inspect_json_names_the_format_of_every_shared_fixture(shared, home, capsys, name):
    code, out, err = run(capsys, "data", "inspect", str(shared / "data" / name), "--json", "--home", str(home))
    assert code == 0, err
    info = json.loads(out)
    assert info["format"] == FIXTURE_FORMATS[name]
    assert info["rows"] > 0 and info["usable"] > 0 and isinstance(info["findings"], list)
    assert info["reason"] and info["note"] and info["columns"]
    if name.startswith("glaive"):
        assert info["tools"] is True


def test_inspect_text_output_and_mapping(tmp_path, home, capsys):
    rows = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(5)]
    path = write(tmp_path / "qa.json", json.dumps(rows))
    code, out, err = run(capsys, "data", "inspect", path, "--mapping", "instruction=question",
                         "--mapping", "output=answer", "--home", str(home))
    assert code == 0, err
    assert "qa.json: 5 rows" in out and "format: alpaca" in out


BAD = {
    "malformed.json": ('[{"instruction": "q", "output": "a"},\n {"instruction": "q" "output": "a"}]',
                       "line 2, column"),
    "torn.jsonl": ('{"text": "a"}\n{"text": "b"}\n{"text": "c', "the last line, is incomplete JSON"),
    "kinds.jsonl": ('{"instruction": "q", "output": "a"}\n{"instruction": "q", "output": {"x": 1}}\n',
                    "holds an object, but earlier rows hold text"),
    "empty.json": ("", "is empty"),
    "header.csv": ("instruction,output\n", "header line but no rows"),
    "latin.csv": ("instruction,output\ncaf\u00e9,a\n".encode("latin-1"), "is not UTF-8"),
    "packed.json": (gzip.compress(json.dumps(ROWS).encode()), "packed or compressed (gzip)"),
    "bigcell.jsonl": ('{"instruction": "q", "output": "' + "x" * 5000 + '"}\n', "the limit is 2 KB per field"),
}


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("command", ["inspect", "prepare"])
def test_bad_files_are_one_error_line_and_exit_2(tmp_path, home, capsys, monkeypatch, name, command):
    monkeypatch.setenv("STUDIO_DATA_MAX_FIELD_MB", "0.002")
    data, words = BAD[name]
    code, out, err = run(capsys, "data", command, write(tmp_path / name, data), "--home", str(home))
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err, err
    assert "Traceback" not in err + out
    assert not (home / "datasets").exists() or not list((home / "datasets").iterdir())


def test_missing_columns_say_expected_and_found(tmp_path, home, capsys):
    path = write(tmp_path / "qa.json", json.dumps([{"question": "q", "answer": "a"}]))
    code, _, err = run(capsys, "data", "inspect", path, "--format", "alpaca", "--home", str(home))
    assert code == 2 and "instruction" in err and "question, answer" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, words", [
    (["--clean", "trim,scrub"], "scrub"),
    (["--clean", "near:1.5"], "near:1.5"),
    (["--split", "0.5,0.6,0.1"], ""),
    (["--split", "0.9,0.1"], ""),
    (["--augment", "teleport"], "teleport"),
    (["--augment", "swap", "--multiplier", "0"], "--multiplier"),
    (["--mapping", "nocolumn"], "--mapping"),
    (["--substitute", "咳嗽"], "--substitute"),
    (["--stratify", "topic"], "topic"),
    (["--max-length", "-1"], "from 16 to 131072"),
    (["--out", "~no_such_user_4f2a/out"], "no home folder for '~no_such_user_4f2a'"),
])
def test_bad_prepare_options_are_one_line(tmp_path, home, capsys, monkeypatch, argv, words):
    path = write(tmp_path / "d.json", json.dumps(ROWS))
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "data", "prepare", path, *argv, "--home", str(home))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "home"]  # no literal "~…" folder


def test_a_missing_file_and_a_missing_command(tmp_path, home, capsys):
    code, _, err = run(capsys, "data", "inspect", str(tmp_path / "nope.json"), "--home", str(home))
    assert code == 2 and err.startswith("error: ")
    code, _, err = run(capsys, "data", "--home", str(home))
    assert code == 2 and "inspect | prepare | list" in err


def test_prepare_saves_lists_writes_out_and_replays(tmp_path, home, capsys):
    rows = [{"instruction": f"Please tell me what the number {i} means in this old story", "output": f"It is {i}."}
            for i in range(20)]
    path = write(tmp_path / "d.json", json.dumps(rows))
    code, out, err = run(capsys, "data", "prepare", path, "--clean", "trim,empty", "--augment", "swap",
                         "--save", "numbers", "--out", str(tmp_path / "out"), "--json", "--home", str(home))
    assert code == 0, err
    result = json.loads(out)
    assert result["rows"]["train"] > 14 and result["rows"]["val"] == 4 and result["rows"]["test"] == 2
    assert result["ref"].startswith("library:numbers-")
    assert json.loads((tmp_path / "out" / "dataset.json").read_text())["hash"] == result["hash"]
    code, out, _ = run(capsys, "data", "list", "--json", "--home", str(home))
    assert [e["ref"] for e in json.loads(out)] == [result["ref"]]
    code, out, _ = run(capsys, "data", "list", "--home", str(home))
    assert result["ref"] in out and "numbers" in out
    code, out, err = run(capsys, "data", "prepare", "--replay", result["id"], "--json", "--home", str(home))
    assert code == 0, err
    again = json.loads(out)
    assert again["identical"] is True and again["hashes"] == result["hashes"] and again["id"] == result["id"]
    code, out, _ = run(capsys, "data", "prepare", "--recipe", str(tmp_path / "out" / "dataset.json"),
                       "--out", str(tmp_path / "out2"), "--json", "--home", str(home))
    assert json.loads(out)["hashes"] == result["hashes"]
    code, out, _ = run(capsys, "data", "prepare", "--replay", result["id"], "--home", str(home))
    assert "identical" in out


def test_prepare_without_save_or_out_saves_under_the_file_name(tmp_path, home, capsys):
    path = write(tmp_path / "my data.json", json.dumps(ROWS))
    code, out, err = run(capsys, "data", "prepare", path, "--clean", "none", "--home", str(home))
    assert code == 0, err
    assert "library:my-data-" in out and "split" in out


def test_list_on_an_empty_home(home, capsys):
    code, out, _ = run(capsys, "data", "list", "--home", str(home))
    assert code == 0 and "No datasets" in out


def test_the_real_command_prints_one_line_and_no_traceback(tmp_path):
    path = write(tmp_path / "torn.jsonl", '{"text": "a"}\n{"text": ')
    env = {**os.environ, "STUDIO_HOME": str(tmp_path / "home"), "STUDIO_LANG": "en"}
    done = subprocess.run([sys.executable, "-m", "studio", "data", "inspect", path, "--json"], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stdout == ""
