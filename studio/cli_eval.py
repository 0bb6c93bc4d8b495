"""The Evaluate commands of `studio`: scores of text files and a run's training report.

    studio score --predictions out.txt --references gold.txt [--references gold2.txt] [--lang zh]
                 [--stem] [--metric chrf] [--json]
    studio report RUN [--out report.pdf] [--lang zh]

A text file is one text per line (`.txt`; empty lines count: an empty prediction is a
prediction), or JSON Lines / a JSON array with a `text` field (`.jsonl`, `.json`). Several
`--references` give several references per example, line N of each file belonging to example N.
`score --json` prints {"rouge1", "rouge2", "rougeL" (0-1), "bleu" (0-100, as sacreBLEU reports
it), "tokenization", "examples", "references"} (+ "extra": {metric: {...}} with --metric).
Bad input is one `error: …` line and exit 2 (cli.main prints the UserError).

Registered by studio/cli.py: `add_commands(sub, add_home)` and `COMMANDS`.
"""

from __future__ import annotations

import json
from pathlib import Path

from studio.errors import UserError
from studio.i18n import render, t
from studio.paths import expand_user


def add_commands(sub, add_home) -> None:
    score = sub.add_parser("score", help=t("scores.help_score"))
    add_home(score)
    score.add_argument("--predictions", required=True, metavar="FILE", help=t("scores.help_predictions"))
    score.add_argument("--references", required=True, action="append", metavar="FILE",
                       help=t("scores.help_references"))
    score.add_argument("--lang", default=None, help=t("scores.help_lang"))
    score.add_argument("--stem", action="store_true", help=t("scores.help_stem"))
    score.add_argument("--metric", action="append", default=[], metavar="NAME", help=t("scores.help_metric"))
    score.add_argument("--json", action="store_true", help=t("scores.help_json"))

    report = sub.add_parser("report", help=t("scores.help_report"))
    add_home(report)
    report.add_argument("run", metavar="RUN", help=t("scores.help_run"))
    report.add_argument("--out", default=None, metavar="FILE", help=t("scores.help_out"))
    report.add_argument("--lang", default=None, choices=["en", "zh"], help=t("scores.help_report_lang"))

    from studio.cli_evaluate import add_eval_command  # `studio eval` (helper EVAL's module)

    add_eval_command(sub, add_home)


# ---- reading text files ----------------------------------------------------------------------

def read_texts(path_text: str) -> list[str]:
    """The texts of a file: one per line (.txt), or the `text` field of each JSON row."""
    from studio.dataload import limits, read_rows

    path = expand_user(path_text)
    if not path.exists():
        raise UserError("scores.file_missing", path=str(path))
    if path.is_dir():
        raise UserError("scores.file_folder", path=str(path))
    if path.suffix.lower() in (".jsonl", ".json"):
        texts = []
        for number, row in enumerate(read_rows(path), 1):  # the data checks: size, binary, JSON lines
            value = row.get("text")
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise UserError("scores.file_no_text", name=path.name, row=number)
            texts.append(str(value))
        return texts
    return _lines(path, limits()["file"])


def _lines(path: Path, max_bytes: int) -> list[str]:
    """Every line of a text file, empty ones included (they are empty predictions)."""
    from studio.dataload import human_size

    size = path.stat().st_size
    if size > max_bytes:
        raise UserError("data.file_too_large", key="data.path", name=path.name, size=human_size(size),
                        limit=human_size(max_bytes))
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise UserError("data.binary", name=path.name, line=raw.count(b"\n", 0, raw.index(b"\x00")) + 1)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise UserError("data.not_utf8", name=path.name, line=line, column=column,
                        byte=f"0x{raw[exc.start]:02X}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":  # the newline that ends the last line starts no new text
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def load_pairs(predictions_file: str, reference_files: list[str]) -> tuple[list[str], list[list[str]]]:
    """Predictions and, per example, its references (one from each references file)."""
    predictions = read_texts(predictions_file)
    if not predictions:
        raise UserError("scores.file_empty", name=Path(predictions_file).name)
    columns = []
    for name in reference_files:
        texts = read_texts(name)
        if len(texts) != len(predictions):
            raise UserError("scores.files_mismatch", predictions=Path(predictions_file).name,
                            n_predictions=len(predictions), references=Path(name).name, n_references=len(texts))
        columns.append(texts)
    return predictions, [list(refs) for refs in zip(*columns)]


# ---- commands --------------------------------------------------------------------------------

def cmd_score(args, home) -> int:
    from studio.metrics import extra_metric, score, tokenization_note

    predictions, references = load_pairs(args.predictions, args.references)
    result = score(predictions, references, lang=args.lang, stem=args.stem)
    if args.metric:
        result["extra"] = {name: extra_metric(name, predictions, references) for name in args.metric}
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    print("  ".join(f"{t(code)} {result[key]:.4f}" for key, code in
                    (("rouge1", "scores.metric.rouge1"), ("rouge2", "scores.metric.rouge2"),
                     ("rougeL", "scores.metric.rouge_l")))
          + f"  {t('scores.metric.bleu')} {result['bleu']:.2f}")
    for name, values in result.get("extra", {}).items():
        print(f"{name}: " + "  ".join(f"{k} {v:.4g}" for k, v in values.items()))
    print(render(tokenization_note(result["tokenization"])))
    print(t("scores.cli_examples", examples=result["examples"], references=result["references"]))
    return 0


def cmd_report(args, home) -> int:
    from studio.report import training_report
    from studio.runs import RunStore

    try:
        run = RunStore(home).get(args.run)
    except KeyError:
        raise UserError("scores.no_run", run=args.run) from None
    out = expand_user(args.out, strict=True) if args.out else run.path / "report.png"
    written = training_report(run, out, lang=args.lang)
    print(t("scores.report_written", path=str(written)))
    return 0


def cmd_eval(args, home) -> int:
    from studio.cli_evaluate import cmd_eval as run_eval

    return run_eval(args, home)


COMMANDS = {"score": cmd_score, "report": cmd_report, "eval": cmd_eval}
