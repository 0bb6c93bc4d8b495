"""`studio data …`: look at a dataset, prepare it, list the library — the Data tab's backend, from a terminal.

    studio data inspect FILE [--format F] [--mapping role=col …] [--model M] [--json]
    studio data prepare FILE [--format F] [--clean trim,empty,dedupe,near:0.85,conflicts:drop,…]
                        [--split 0.7,0.2,0.1] [--seed N] [--stratify COL]
                        [--augment synonym,swap,…] [--multiplier X] [--substitute 咳嗽=胸痛|咯血]
                        [--out DIR] [--save NAME] [--json]
    studio data prepare --replay ID          # a library dataset's recipe, run again
    studio data prepare --recipe dataset.json
    studio data list [--json]

FILE is a data file, a bundled name (demo-en), a Hub dataset id (with --hub-config / --hub-split)
or `library:<id>`. Bad input — a broken file, a wrong format, a bad option — is one line
`error: …` and exit 2 (the same checks as training: studio.dataload, studio.formats). `prepare`
saves into the library (under NAME, or the file's name) unless --out is given alone.

--clean lists the cleaning steps to run (the others are off); without it the defaults of
studio.clean.CleanOptions run. Items: trim, empty, dedupe (exact), near[:THRESHOLD],
conflicts[:first|drop], min:TOKENS, max:TOKENS, fill:NAME=VALUE; `none` runs no cleaning.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from studio.config import field_specs
from studio.errors import UserError, explain
from studio.i18n import render, t
from studio.paths import expand_user

FORMAT_CHOICES = ("auto", "alpaca", "sharegpt", "messages", "prompt_completion", "preference", "text")


def add_commands(sub, add_home) -> None:
    data = sub.add_parser("data", help=t("library.cli_help_data"), description=t("library.cli_help_data"))
    add_home(data)
    commands = data.add_subparsers(dest="data_command", metavar="{inspect,prepare,list}")

    inspect = commands.add_parser("inspect", help=t("library.cli_help_inspect"))
    add_home(inspect)
    inspect.add_argument("file", metavar="FILE", help=t("library.cli_help_file"))
    _source_options(inspect)
    inspect.add_argument("--json", action="store_true", help=t("library.cli_help_json"))

    prepare = commands.add_parser("prepare", help=t("library.cli_help_prepare"))
    add_home(prepare)
    prepare.add_argument("file", metavar="FILE", nargs="?", help=t("library.cli_help_file"))
    _source_options(prepare)
    add = prepare.add_argument
    add("--clean", metavar="STEPS", help=t("library.cli_help_clean"))
    add("--fill", metavar="NAME=VALUE", action="append", default=[], help=t("library.cli_help_fill"))
    add("--split", metavar="TRAIN,VAL,TEST", default="0.7,0.2,0.1", help=t("library.cli_help_split"))
    add("--seed", type=int, default=42, help=t("library.cli_help_seed"))
    add("--stratify", metavar="COLUMN", help=t("library.cli_help_stratify"))
    add("--augment", metavar="METHODS", help=t("library.cli_help_augment"))
    add("--multiplier", type=float, default=1.0, help=t("library.cli_help_multiplier"))
    add("--augment-part", choices=("prompt", "answer", "all"), default="prompt",
        help=t("library.cli_help_augment_part"))
    add("--substitute", metavar="TERM=A|B|C", action="append", default=[], help=t("library.cli_help_substitute"))
    add("--recipe", metavar="FILE", help=t("library.cli_help_recipe"))
    add("--replay", metavar="ID", help=t("library.cli_help_replay"))
    add("--out", metavar="DIR", help=t("library.cli_help_out"))
    add("--save", metavar="NAME", help=t("library.cli_help_save"))
    add("--json", action="store_true", help=t("library.cli_help_json"))

    listing = commands.add_parser("list", help=t("library.cli_help_list"))
    add_home(listing)
    listing.add_argument("--json", action="store_true", help=t("library.cli_help_json"))


def _source_options(parser) -> None:
    add = parser.add_argument
    add("--format", choices=FORMAT_CHOICES, default="auto", help=t("library.cli_help_format"))
    add("--mapping", metavar="ROLE=COLUMN", action="append", default=[], help=t("library.cli_help_mapping"))
    add("--system", default="", help=t("library.cli_help_system"))
    add("--hub-config", default=None, help=t("library.cli_help_hub_config"))
    add("--hub-split", default=None, help=t("library.cli_help_hub_split"))
    add("--max-rows", type=int, default=0, help=t("library.cli_help_max_rows"))
    add("--model", default=None, help=t("library.cli_help_model"))
    add("--max-length", type=int, default=256, help=t("library.cli_help_max_length"))


# ---- option parsing (each mistake one sentence) -----------------------------------------------

def _pairs(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError("library.cli_bad_pair", option=option, item=item)
        out[name.strip()] = value.strip()
    return out


def parse_clean(spec: str | None, fill: list[str] | None = None) -> dict:
    """--clean items -> studio.clean.CleanOptions fields ({} = the defaults)."""
    placeholders = {k.strip("{} "): v for k, v in _pairs(fill or [], "--fill").items()}
    if spec is None:
        return {"placeholders": placeholders} if placeholders else {}
    options = {"trim": False, "drop_empty": False, "dedupe": "off", "conflicts": "off"}
    for item in (part.strip() for part in spec.split(",")):
        name, _, value = item.partition(":")
        name = name.strip().lower()
        if name in ("", "none", "off"):
            continue
        if name == "trim":
            options["trim"] = True
        elif name == "empty":
            options["drop_empty"] = True
        elif name in ("dedupe", "exact"):
            options["dedupe"] = "exact"
        elif name == "near":
            options["dedupe"] = "near"
            if value:
                options["near_threshold"] = _number(value, item, 0.0, 1.0)
        elif name == "conflicts":
            choice = {"": "keep_first", "first": "keep_first", "keep": "keep_first", "keep_first": "keep_first",
                      "drop": "drop_all", "drop_all": "drop_all"}.get(value.strip().lower())
            if choice is None:
                raise UserError("library.cli_bad_clean", item=item)
            options["conflicts"] = choice
        elif name in ("min", "max"):
            options[f"{name}_tokens"] = int(_number(value, item, 0, None, integer=True))
        elif name == "fill":
            key, sep, text = value.partition("=")
            if not sep or not key.strip("{} "):
                raise UserError("library.cli_bad_clean", item=item)
            placeholders[key.strip("{} ")] = text
        else:
            raise UserError("library.cli_bad_clean", item=item)
    if placeholders:
        options["placeholders"] = placeholders
    return options


def _number(text: str, item: str, low, high, integer: bool = False):
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise UserError("library.cli_bad_clean", item=item) from None
    if value < low or (high is not None and value > high):
        raise UserError("library.cli_bad_clean", item=item)
    return value


def parse_augment(args) -> dict | None:
    """--augment/--multiplier/--augment-part/--substitute -> studio.augment.AugmentOptions fields."""
    methods = [m.strip().lower() for m in (args.augment or "").split(",") if m.strip()]
    substitutions = {}
    for term, options in _pairs(args.substitute, "--substitute").items():
        choices = [o.strip() for o in options.replace("｜", "|").split("|") if o.strip()]
        if not choices:
            raise UserError("library.cli_bad_pair", option="--substitute", item=f"{term}={options}")
        substitutions[term] = choices
    if substitutions and "substitute" not in methods:
        methods.append("substitute")
    if not methods:
        return None
    try:
        from studio.augment import METHODS as known
    except ImportError:
        known = ("synonym", "insert", "swap", "delete", "reorder", "substitute")
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise UserError("library.cli_bad_augment", methods=", ".join(unknown), known=", ".join(known))
    if not args.multiplier > 0:
        raise UserError("library.cli_bad_multiplier", value=args.multiplier)
    options = {"methods": methods, "multiplier": args.multiplier, "seed": args.seed, "part": args.augment_part}
    if substitutions:
        options["substitutions"] = substitutions
    return options


def _tokenizer(args):
    if not args.model:
        return None
    from studio.models import load_tokenizer
    from studio.paths import resolve_model_path

    try:
        return load_tokenizer(resolve_model_path(args.model), False)
    except Exception as exc:  # a missing or unreadable model: one sentence
        raise UserError("library.cli_no_tokenizer", model=args.model, detail=str(exc).splitlines()[0][:200]
                        if str(exc) else type(exc).__name__) from None


# ---- inspect ------------------------------------------------------------------------------------

def inspect(args) -> dict:
    """What `studio data inspect` reports, as plain JSON values (Msgs rendered)."""
    from studio.dataload import load_table, table_rows
    from studio.formats import detect
    from studio.paths import DEMO_DATA, is_library_ref, resolve_data_path
    from studio.quality import inspect_table

    # Arrow all the way: the rows never become one big list of dicts (100k-row files in seconds).
    table = load_table(args.file, config=args.hub_config, split=args.hub_split, max_rows=args.max_rows)
    mapping = _pairs(args.mapping, "--mapping") or None
    found = detect(table_rows(table, 0, 1000), mapping, args.format)
    kind = "dpo" if found.format == "preference" else "sft"  # preference rows: chosen and rejected checked
    detection, report = inspect_table(table, args.format, mapping, system=args.system, kind=kind,
                                      tokenizer=_tokenizer(args), max_length=args.max_length)
    rows = table.num_rows
    lengths = [n for n in (report.get("lengths") or []) if n is not None]
    return {
        "source": (args.file if args.file in DEMO_DATA or is_library_ref(args.file)
                   else Path(resolve_data_path(args.file)).name or args.file),
        "format": detection.format,
        "reason": render(detection.reason),
        "note": render(detection.note),
        "warnings": [render(w) for w in detection.warnings],
        "rows": rows,
        "usable": report.get("rows", rows),
        "columns": list(detection.columns),
        "mapping": dict(detection.mapping),
        "tools": bool(getattr(detection, "tools", False)),
        "findings": [{"code": f["code"], "count": f["count"], "examples": list(f.get("examples") or [])[:20],
                      "message": render(f.get("message"))} for f in report.get("findings") or []],
        "languages": report.get("languages") or {},
        "lengths": ({"min": min(lengths), "max": max(lengths), "mean": round(sum(lengths) / len(lengths), 1),
                     "over": sum(n > args.max_length for n in lengths), "max_length": args.max_length,
                     "counted_with": args.model or None} if lengths else None),
        "histogram": report.get("histogram") or [],
        "unit": report.get("unit"),
    }


def _print_inspect(info: dict) -> None:
    print(t("library.cli_inspect_head", source=info["source"], rows=info["rows"], usable=info["usable"]))
    print(t("library.cli_inspect_format", format=info["format"], reason=info["reason"]))
    print(f"  {info['note']}")
    for warning in info["warnings"]:
        print(f"  ! {warning}")
    print(t("library.cli_inspect_fields", fields=", ".join(info["columns"])))
    found = [f for f in info["findings"] if f["count"]]
    if not found:
        print(t("library.cli_inspect_clean"))
    for f in found:
        rows = ", ".join(str(i) for i in f["examples"][:8])
        print(f"  - {f['message']}" + (" " + t("library.cli_inspect_rows", rows=rows) if rows else ""))
    if info["languages"]:
        print(t("library.cli_inspect_languages", languages=", ".join(f"{k} {v}" for k, v in info["languages"].items())))
    if info["lengths"]:
        print(t("library.cli_inspect_lengths", **{k: v for k, v in info["lengths"].items() if k != "counted_with"}))


# ---- prepare ------------------------------------------------------------------------------------

def recipe_from_args(args):
    from studio.prepare import DataRecipe

    if not args.file:
        raise UserError("library.cli_need_file")
    recipe = DataRecipe(source=args.file, config=args.hub_config, split=args.hub_split, format=args.format,
                        mapping=_pairs(args.mapping, "--mapping"), system=args.system, max_rows=args.max_rows,
                        clean=parse_clean(args.clean, args.fill), split_ratios=args.split, split_seed=args.seed,
                        stratify=args.stratify or None, augment=parse_augment(args))
    recipe.check()
    return recipe


def prepare_command(args, home) -> dict:
    from studio.library import Library
    from studio.prepare import DataRecipe, prepare, write_prepared

    library = Library(home)
    recorded = None
    if args.replay:
        recorded = library.get(args.replay)
        recipe = DataRecipe.from_dict(recorded.get("recipe") or {})
        name = args.save or recorded.get("name")
    elif args.recipe:
        recipe = DataRecipe.load(args.recipe)
        if args.file:
            recipe.source = args.file
        name = args.save
    else:
        recipe = recipe_from_args(args)
        name = args.save
    prepared = prepare(recipe, tokenizer=_tokenizer(args), max_length=args.max_length)
    result = {"steps": [{"step": s["step"], "before": s["before"], "after": s["after"],
                         "message": render(s.get("message"))} for s in prepared.steps],
              "format": prepared.format, "rows": prepared.rows(), "hashes": prepared.hashes()}
    if args.out:
        meta = write_prepared(prepared, args.out, name or "")
        result.update(out=str(Path(args.out).resolve()), hash=meta["hash"])
    if name or not args.out:
        entry = library.save(prepared, name or Path(prepared.source.get("name") or "dataset").stem)
        result.update(id=entry["id"], ref=entry["ref"], hash=entry["hash"], name=entry["name"])
    if recorded is not None:
        result["replayed"] = recorded["id"]
        result["identical"] = result["hashes"] == {s: v.get("sha256") for s, v in recorded["splits"].items()}
        before, now = (recorded.get("source") or {}).get("sha256"), prepared.source.get("sha256")
        result["source_changed"] = bool(before and now and before != now)
    return result


def _print_prepare(result: dict) -> None:
    for step in result["steps"]:
        print(f"  {step['step']:<12} {step['before']:>7} → {step['after']:<7} {step['message']}")
    rows = result["rows"]
    print(t("library.cli_prepared", train=rows["train"], val=rows["val"], test=rows["test"], format=result["format"]))
    if result.get("out"):
        print(t("library.cli_written", out=result["out"]))
    if result.get("ref"):
        print(t("library.cli_saved", name=result["name"], ref=result["ref"]))
    if "replayed" in result:
        print(t("library.cli_replay_same" if result["identical"] else "library.cli_replay_differs",
                ref="library:" + result["replayed"]))
        if result["source_changed"]:
            print(t("library.cli_source_changed"))


# ---- list ---------------------------------------------------------------------------------------

def _print_list(entries: list[dict], home) -> None:
    if not entries:
        print(t("library.cli_none", home=str(Path(home) / "datasets")))
        return
    print(f"{t('library.cli_col_ref'):40} {t('library.cli_col_name'):24} {t('library.cli_col_format'):18} "
          f"{t('library.cli_col_rows')}")
    for e in entries:
        rows = f"{e['rows']['train']}/{e['rows']['val']}/{e['rows']['test']}"
        print(f"{e['ref']:40} {e['name'][:24]:24} {str(e['format']):18} {rows}")


def cmd_data(args, home) -> int:
    command = getattr(args, "data_command", None)
    if command is None:
        raise UserError("library.cli_need_command")
    bounds = field_specs()["train.max_length"].metadata  # the same range as a run's max length
    if command in ("inspect", "prepare") and not bounds["min"] <= args.max_length <= bounds["max"]:
        raise UserError("library.cli_bad_max_length", value=args.max_length, min=bounds["min"], max=bounds["max"])
    if command == "prepare" and args.out:  # where the result goes is settled before any work
        args.out = str(expand_user(args.out, strict=True))
    try:
        if command == "inspect":
            info = inspect(args)
            print(json.dumps(info, ensure_ascii=False, indent=1)) if args.json else _print_inspect(info)
        elif command == "prepare":
            result = prepare_command(args, home)
            print(json.dumps(result, ensure_ascii=False, indent=1)) if args.json else _print_prepare(result)
        else:
            from studio.library import Library

            entries = Library(home).list()
            print(json.dumps(entries, ensure_ascii=False, indent=1)) if args.json else _print_list(entries, home)
        return 0
    except (UserError, OSError):
        raise  # cli.main prints them as one line, exit 2
    except (RecursionError, MemoryError, ValueError) as exc:  # hostile input that got past the checks
        print(t("cli.error", message=render(explain(exc))), file=sys.stderr)
        return 2


COMMANDS = {"data": cmd_data}


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - `python -m studio.cli_data`
    from studio.cli import main as studio_main

    return studio_main(["data", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
