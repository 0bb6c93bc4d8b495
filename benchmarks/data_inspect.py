"""`studio data inspect` on a 100k-row JSONL against `datasets.load_dataset("json", …)` alone.

    .venv/bin/python benchmarks/data_inspect.py [--rows 100000] [--rounds 3] [--tokenizer]

Generates an alpaca JSONL (English and Chinese rows, a few exact and near duplicates and
placeholders, like a real instruction set) in a temporary folder, then runs, each in a fresh
Python process and alternating the order round by round (so drift of a busy machine hits both):

  datasets   `datasets.load_dataset("json", data_files=FILE, split="train")` with a fresh cache
             folder: what loading the file costs anyway;
  studio     what `studio data inspect FILE --json` computes, through the backend functions:
             `load_table` (Arrow) + `inspect_table` (format detection, the texts the records
             would have, and the whole quality report: empty fields, exact and near duplicates,
             conflicts, invalid characters, placeholders, languages, the length histogram).
             Without a tokenizer by default (the histogram then counts characters); with
             --tokenizer the demo model's chat template counts every row's tokens too;
  cli        (when studio/cli_data.py has the command) `python -m studio data inspect FILE --json`
             itself, for reference.

Wall time includes starting Python and the imports (what a user waits for); the time ratio is
the median of the per-round ratios (each round's two runs are back to back), and the CPU time
(user + system, all threads) is shown too, as it suffers less from a busy machine. Memory is
each process's peak resident set (VmHWM), shown whole and above the process's resident set
before the data was touched (after imports; for the studio after a warm-up on a 3-row file,
whose time is not counted), next to the file's Arrow size. Targets: studio / datasets time
ratio <= 1.5; studio's memory above its start <= 2x the Arrow size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORDS = ("the a of to and in is for on with as by at from that this it be are was were can will should "
         "explain describe list compare write summarise translate classify answer question data model "
         "water energy light heart blood lung body cell plant animal city river country history science "
         "music art language number system network computer program function value result method process "
         "problem solution example reason effect cause change growth market price cost money time year day "
         "people child teacher student doctor patient disease treatment symptom medicine health food diet "
         "sleep exercise weather climate ocean mountain forest desert planet star moon sun earth space rocket "
         "engine machine robot tool design build test measure improve reduce increase protect support").split()
HANZI = ("的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行"
         "过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从知病医生患者治疗"
         "症状健康饮食运动睡眠天气气候海洋山森林沙漠星球太阳地球空间火箭发动机机器人工具设计测试改进减少增加保护")


def make_dataset(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)

    def english(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "."

    def chinese(lo: int, hi: int) -> str:
        return "".join(rng.choice(HANZI) for _ in range(rng.randint(lo, hi))) + "。"

    written: list[dict] = []
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            roll = rng.random()
            if written and roll < 0.02:  # an exact copy of an earlier row
                row = dict(rng.choice(written))
            elif written and roll < 0.04:  # a near copy: one word of the answer changed
                row = dict(rng.choice(written))
                words = row["output"].split(" ")
                words[rng.randrange(len(words))] = rng.choice(WORDS)
                row["output"] = " ".join(words)
            elif roll < 0.30:
                row = {"instruction": chinese(10, 30), "input": "" if rng.random() < 0.6 else chinese(10, 40),
                       "output": chinese(60, 200)}
            else:
                row = {"instruction": english(6, 18), "input": "" if rng.random() < 0.6 else english(8, 40),
                       "output": english(30, 120)}
                if rng.random() < 0.005:
                    row["instruction"] += " Dear {{name}},"
            if len(written) < 5000:
                written.append(row)
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(which: str, file: str, tokenizer: bool) -> None:
    """One measured side, in its own process: prints one JSON line."""
    if which == "datasets":
        import datasets

        datasets.disable_progress_bars()
        start_rss = _rss_mb()
        with tempfile.TemporaryDirectory() as cache:
            ds = datasets.load_dataset("json", data_files=file, split="train", cache_dir=cache)
            info = {"rows": len(ds), "arrow_mb": ds.data.nbytes / 1e6}
    else:
        from studio.dataload import load_table
        from studio.quality import inspect_table

        # Warm up on a 3-row file first: Arrow's compute kernels map tens of MB of library code
        # the first time they run; that is not memory the data takes (datasets' is at import).
        # Its time is reported and taken off the wall time.
        began, began_cpu = time.perf_counter(), time.process_time()
        with tempfile.TemporaryDirectory() as tmp:
            tiny = Path(tmp) / "tiny.jsonl"
            make_dataset(tiny, 3)
            inspect_table(load_table(str(tiny)))
        warmup, warmup_cpu = time.perf_counter() - began, time.process_time() - began_cpu
        tok = None
        if tokenizer:
            from studio.models import load_tokenizer
            from studio.paths import DEMO_MODEL

            tok = load_tokenizer(str(DEMO_MODEL), False)
        start_rss = _rss_mb()
        table = load_table(file)
        detection, report = inspect_table(table, tokenizer=tok, max_length=256)
        info = {"rows": table.num_rows, "arrow_mb": table.nbytes / 1e6, "format": detection.format,
                "findings": {f["code"]: f["count"] for f in report["findings"]}, "warmup_s": warmup,
                "warmup_cpu_s": warmup_cpu}
    info.update(start_mb=start_rss, peak_mb=_peak_mb())
    print(json.dumps(info))


def measure(which: str, file: Path, tokenizer: bool) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "STUDIO_LANG": "en"}
    began = time.perf_counter()
    if which == "cli":
        with tempfile.TemporaryDirectory() as home:
            out = subprocess.run([sys.executable, "-m", "studio", "data", "inspect", str(file), "--json",
                                  "--home", home], cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - began
        if out.returncode != 0:
            return {"error": (out.stderr or out.stdout).strip().splitlines()[-1:], "seconds": seconds}
        return {"seconds": seconds, "rows": json.loads(out.stdout).get("rows")}
    code = [sys.executable, __file__, "--child", which, str(file)] + (["--tokenizer"] if tokenizer else [])
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(code, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{which} failed:\n{out.stderr[-3000:]}")
    info = json.loads(out.stdout.strip().splitlines()[-1])
    info["seconds"] = seconds - info.get("warmup_s", 0.0)
    info["cpu_s"] = (cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
                     - info.get("warmup_cpu_s", 0.0))
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokenizer", action="store_true", help="count tokens with the demo model's template too")
    parser.add_argument("--cli", action="store_true", help="also time `python -m studio data inspect FILE --json`")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.tokenizer)
        return
    sides = ["datasets", "studio"] + (["cli"] if args.cli else [])
    results: dict[str, list[dict]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "alpaca_100k.jsonl"
        make_dataset(file, args.rows)
        print(f"file: {args.rows} rows, {file.stat().st_size / 1e6:.1f} MB; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        measure("datasets", file, False)  # warm the page cache and imports once, unmeasured
        for i in range(args.rounds):
            for side in (sides if i % 2 == 0 else sides[::-1]):
                info = measure(side, file, args.tokenizer)
                results[side].append(info)
                memory = (f"peak {info['peak_mb']:6.0f} MB (+{info['peak_mb'] - info['start_mb']:4.0f} over start)"
                          if "peak_mb" in info else "")
                cpu = f"cpu {info['cpu_s']:6.2f} s" if "cpu_s" in info else ""
                print(f"round {i} {side:8} {info['seconds']:6.2f} s  {cpu}  {memory}", flush=True)
    base, ours = results["datasets"], results["studio"]
    arrow_mb = ours[0]["arrow_mb"]
    summary = {
        "rows": args.rows, "arrow_mb": round(arrow_mb, 1), "tokenizer": args.tokenizer,
        "datasets_s": round(statistics.median(r["seconds"] for r in base), 2),
        "studio_s": round(statistics.median(r["seconds"] for r in ours), 2),
        "datasets_cpu_s": round(statistics.median(r["cpu_s"] for r in base), 2),
        "studio_cpu_s": round(statistics.median(r["cpu_s"] for r in ours), 2),
        "datasets_peak_mb": round(statistics.median(r["peak_mb"] for r in base)),
        "studio_peak_mb": round(statistics.median(r["peak_mb"] for r in ours)),
        "datasets_above_start_mb": round(statistics.median(r["peak_mb"] - r["start_mb"] for r in base)),
        "studio_above_start_mb": round(statistics.median(r["peak_mb"] - r["start_mb"] for r in ours)),
        "findings": ours[0]["findings"],
    }
    if "cli" in results:
        summary["cli_s"] = [round(r["seconds"], 2) for r in results["cli"]]
    summary["time_ratio"] = round(statistics.median(s["seconds"] / d["seconds"] for s, d in zip(ours, base)), 2)
    summary["cpu_ratio"] = round(summary["studio_cpu_s"] / summary["datasets_cpu_s"], 2)
    summary["memory_vs_arrow"] = round(summary["studio_above_start_mb"] / arrow_mb, 2)
    print(json.dumps(summary, indent=1))
    ok_time, ok_memory = summary["time_ratio"] <= 1.5, summary["memory_vs_arrow"] <= 2.0
    print(("PASS" if ok_time else "FAIL"), "time ratio", summary["time_ratio"], "(target <= 1.5);",
          ("PASS" if ok_memory else "FAIL"), "memory above start / Arrow size", summary["memory_vs_arrow"],
          "(target <= 2)")


if __name__ == "__main__":
    main()
