"""`studio score` and `studio report`: JSON output, text files of both kinds, several references,
and bad input as one `error: …` line with exit code 2."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from studio.cli import main
from studio.cli_eval import read_texts
from studio.config import StudioConfig
from studio.metrics import score
from studio.runs import RunStore

PREDS = ["the cat sat on the mat", "热的反义词是热。", ""]
REFS = ["the cat sat on a mat", "热的反义词是冷。", "nothing here"]
REFS2 = ["a cat was on the mat", "热的反面是冷。", "nothing"]


def write_txt(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def write_jsonl(path, lines):
    path.write_text("".join(json.dumps({"text": line, "id": i}, ensure_ascii=False) + "\n"
                            for i, line in enumerate(lines)), encoding="utf-8")
    return str(path)


def cli_json(capsys, *args, home):
    assert main([*args, "--json", "--home", str(home)]) == 0
    return json.loads(capsys.readouterr().out)


def test_score_json_from_text_and_jsonl_files(tmp_path, home, capsys):
    preds = write_txt(tmp_path / "preds.txt", PREDS)
    refs = write_jsonl(tmp_path / "refs.jsonl", REFS)
    result = cli_json(capsys, "score", "--predictions", preds, "--references", refs, home=home)
    expected = score(PREDS, [[r] for r in REFS])
    assert set(result) >= {"rouge1", "rouge2", "rougeL", "bleu", "tokenization"}
    for key in ("rouge1", "rouge2", "rougeL", "bleu"):
        assert result[key] == pytest.approx(expected[key], abs=1e-9)
    assert all(0 <= result[k] <= 1 for k in ("rouge1", "rouge2", "rougeL")) and 0 <= result["bleu"] <= 100
    assert result["tokenization"] == "characters" and result["examples"] == 3  # the empty line counts


def test_several_references_and_options(tmp_path, home, capsys):
    preds = write_txt(tmp_path / "p.txt", PREDS)
    refs = [write_txt(tmp_path / "r1.txt", REFS), write_txt(tmp_path / "r2.txt", REFS2)]
    result = cli_json(capsys, "score", "--predictions", preds, "--references", refs[0], "--references", refs[1],
                      "--lang", "zh", "--stem", home=home)
    expected = score(PREDS, [list(pair) for pair in zip(REFS, REFS2)], lang="zh", stem=True)
    assert result["bleu"] == pytest.approx(expected["bleu"], abs=1e-9)
    assert result["rougeL"] == pytest.approx(expected["rougeL"], abs=1e-9)
    assert result["references"] == 2


def test_english_only_is_scored_on_words(tmp_path, home, capsys):
    preds = write_txt(tmp_path / "p.txt", ["the cat sat"])
    refs = write_txt(tmp_path / "r.txt", ["the cat sat down"])
    result = cli_json(capsys, "score", "--predictions", preds, "--references", refs, home=home)
    assert result["tokenization"] == "words" and result["rouge1"] == pytest.approx(2 * 0.75 / 1.75)


def test_plain_output(tmp_path, home, capsys):
    preds = write_txt(tmp_path / "p.txt", PREDS)
    refs = write_txt(tmp_path / "r.txt", REFS)
    assert main(["score", "--predictions", preds, "--references", refs, "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "ROUGE-1" in out and "ROUGE-L" in out and "BLEU" in out and "character" in out


def test_text_lines_keep_empty_lines_and_crlf(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"a\r\n\r\nb")
    assert read_texts(str(path)) == ["a", "", "b"]


def one_error_line(capsys, args, home, fragment):
    assert main([*args, "--home", str(home)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert fragment in captured.err, captured.err
    assert "Traceback" not in captured.err


def test_bad_score_input(tmp_path, home, capsys):
    good = write_txt(tmp_path / "good.txt", ["a", "b"])
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    short = write_txt(tmp_path / "short.txt", ["a"])
    no_text = tmp_path / "no_text.jsonl"
    no_text.write_text('{"text": "a"}\n{"answer": "b"}\n')
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"ok\n\x00\x01")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café\n".encode("latin-1"))
    cases = [
        (["--predictions", str(empty), "--references", good], "holds no texts"),
        (["--predictions", good, "--references", short], "holds 2 texts but short.txt holds 1"),
        (["--predictions", good, "--references", str(tmp_path / "missing.txt")], "does not exist"),
        (["--predictions", str(tmp_path), "--references", good], "is a folder"),
        (["--predictions", good, "--references", str(no_text)], 'row 2: each row needs a "text" field'),
        (["--predictions", str(binary), "--references", good], "binary"),
        (["--predictions", str(latin), "--references", str(latin)], "not UTF-8"),
        (["--predictions", good, "--references", good, "--metric", "../evil"], "not the name of a metric"),
    ]
    for args, fragment in cases:
        one_error_line(capsys, ["score", *args], home, fragment)


def test_report_writes_png_and_pdf(tmp_path, home, capsys):
    run = RunStore(home).create(StudioConfig())
    run.append_metric({"step": 1, "loss": 2.0, "eval_loss": None, "learning_rate": 1e-4})
    assert main(["report", run.id, "--home", str(home)]) == 0
    assert str(run.path / "report.png") in capsys.readouterr().out
    with Image.open(run.path / "report.png") as image:
        assert image.format == "PNG"
    out = tmp_path / "r" / "report.pdf"
    assert main(["report", run.id, "--out", str(out), "--lang", "zh", "--home", str(home)]) == 0
    assert out.read_bytes().startswith(b"%PDF")


def test_bad_report_input(tmp_path, home, capsys):
    one_error_line(capsys, ["report", "no-such-run"], home, "No run called 'no-such-run'")
    one_error_line(capsys, ["report", "../../etc"], home, "No run called")
    run = RunStore(home).create(StudioConfig())
    one_error_line(capsys, ["report", run.id, "--out", str(tmp_path / "r.svg")], home, ".png or .pdf")


def test_subprocess_help_and_error(tmp_path, home):
    out = subprocess.run([sys.executable, "-m", "studio", "score", "--help"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "--references" in out.stdout
    out = subprocess.run([sys.executable, "-m", "studio", "score", "--predictions", str(tmp_path / "none.txt"),
                          "--references", str(tmp_path / "none.txt"), "--home", str(home)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr
