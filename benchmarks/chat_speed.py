"""Chat streaming vs plain `model.generate`, and the memory of two adapters on one base vs one.

    .venv/bin/python benchmarks/chat_speed.py [--models demo,shared] [--rounds 6]
                                              [--max-new-tokens 128] [--skip-memory]

(a) Speed. The studio side is what the Chat and Arena tabs run: an `AdapterPool` with a LoRA
adapter attached, `pool.using(name)` + `studio.infer.Generation` (= `AdapterPool.stream`): a
worker thread generating into a TextIteratorStreamer, stop-sequence hold-back, a cancel check on
every token. The baseline is plain `model.generate` called in the caller's thread on the same
PeftModel with the same adapter active, the same prompt (chat template applied), greedy, the same
max new tokens; a no-op streamer notes when its first new token arrives. Both start the clock
before the chat template is applied. Time to first token (TTFT) is the first token for the
baseline and the first text the user could see for the studio (the streamer releases text at word
boundaries, so this includes waiting for the first word). Rounds alternate the order (plain,
studio, studio, plain, …) so drift of the shared machine hits both; medians are reported. Target:
overhead ≤ 10 % (studio tokens/s ≥ 0.9 × plain, studio TTFT ≤ 1.1 × plain). The TTFT overhead is
also printed in milliseconds: it is a fixed cost per answer (a thread, a queue), so its ratio is
largest on these tiny models, whose whole first token takes ~10 ms.

Threads: both sides run with `--threads` torch threads (default 1). On this shared 2-core machine
`model.generate` with 2 OpenMP threads called from the main thread was 10-40× slower than the same
call from a worker thread (threads spinning against other load), which would flatter the studio's
worker thread; one thread gives both sides the same conditions and steadier numbers.

(b) Memory. Separate subprocesses each load the base into an AdapterPool, attach one or two
adapters (LoRA, random init, saved as safetensors like a run's adapter) and produce one answer
from each; their resident set size (VmRSS, and the peak VmHWM) is compared. Target: two / one ≤ 1.1.
For scale, a third child loads two separate copies (base + adapter each, `load_for_inference`),
which is what sharing the base avoids. The adapters are built fresh (random LoRA matrices, seeds
1 and 2) so the benchmark needs no training run; `--models` names the demo model ("demo") and the
shared fixture aidreams-260k ("shared", skipped when absent) or any model folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.paths import DEMO_MODEL  # noqa: E402

SHARED_MODEL = ROOT.parent / "shared" / "fixtures" / "models" / "aidreams-260k"
MESSAGES = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Explain in a few sentences why the sky is blue and why sunsets are red."}]


def model_path(name: str) -> Path | None:
    if name == "demo":
        return DEMO_MODEL
    if name == "shared":
        return SHARED_MODEL if SHARED_MODEL.is_dir() else None
    return Path(name)


def make_adapter(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter for `base` with random A and B (so it really changes the answers)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False,
                        task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(str(out))
    return out


class FirstToken:
    """A streamer that only notes the time of the first generated token (the first put is the prompt)."""

    def __init__(self):
        self.calls, self.at = 0, None

    def put(self, value):
        self.calls += 1
        if self.calls == 2:
            self.at = time.perf_counter()

    def end(self):
        pass


@torch.inference_mode()
def plain(model, tokenizer, max_new_tokens: int) -> dict:
    began = time.perf_counter()
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
    timer = FirstToken()
    out = model.generate(**inputs, streamer=timer, max_new_tokens=max_new_tokens, do_sample=False,
                         temperature=None, top_p=None, top_k=None, repetition_penalty=1.0,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    total = time.perf_counter() - began
    new = out[0, inputs["input_ids"].shape[1]:]
    return {"ttft": timer.at - began, "total": total, "tokens": int(new.shape[0]),
            "text": tokenizer.decode(new, skip_special_tokens=True)}


def studio(pool, name: str, max_new_tokens: int) -> dict:
    from studio.infer import ChatSettings, Generation

    began, first, text = time.perf_counter(), None, ""
    settings = ChatSettings(max_new_tokens=max_new_tokens)
    with pool.using(name) as model:  # exactly AdapterPool.stream, kept open to read the token count
        generation = Generation(model, pool.tokenizer, MESSAGES, settings)
        for text in generation:
            if first is None:
                first = time.perf_counter()
    total = time.perf_counter() - began
    return {"ttft": (first or time.perf_counter()) - began, "total": total,
            "tokens": generation.completion_tokens, "text": text}


def speed(model_name: str, base: Path, adapter: Path, rounds: int, max_new_tokens: int) -> dict:
    from studio.arena import AdapterPool

    pool = AdapterPool(str(base))
    name = pool.add(adapter)
    pool.peft.set_adapter(name)
    runs = {"plain": [], "studio": []}
    plain(pool.peft, pool.tokenizer, 8), studio(pool, name, 8)  # warm-up, both paths
    for i in range(rounds):
        for side in (("plain", "studio") if i % 2 == 0 else ("studio", "plain")):
            result = (plain(pool.peft, pool.tokenizer, max_new_tokens) if side == "plain"
                      else studio(pool, name, max_new_tokens))
            runs[side].append(result)
            print(f"  {model_name} round {i} {side:6} ttft {result['ttft'] * 1000:7.1f} ms  "
                  f"{result['tokens'] / result['total']:7.1f} tokens/s  ({result['tokens']} tokens)", flush=True)

    def median(side, key):
        return statistics.median(r[key] for r in runs[side])

    def rate(side):
        return statistics.median(r["tokens"] / r["total"] for r in runs[side])

    same = runs["plain"][0]["text"].strip() == runs["studio"][0]["text"].strip()
    out = {"model": model_name, "tokens": runs["plain"][0]["tokens"], "same_text": same,
           "plain_ttft_ms": round(median("plain", "ttft") * 1000, 2),
           "studio_ttft_ms": round(median("studio", "ttft") * 1000, 2),
           "plain_tokens_per_s": round(rate("plain"), 1), "studio_tokens_per_s": round(rate("studio"), 1)}
    out["ttft_overhead_ms"] = round(out["studio_ttft_ms"] - out["plain_ttft_ms"], 2)  # fixed cost per answer
    out["ttft_ratio"] = round(out["studio_ttft_ms"] / out["plain_ttft_ms"], 3)
    out["tokens_per_s_ratio"] = round(out["studio_tokens_per_s"] / out["plain_tokens_per_s"], 3)
    return out


def rss_child(base: str, adapters: list[str], mode: str) -> None:
    """Runs in a subprocess: load, answer once per adapter, print RSS figures as JSON."""
    def status(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MiB
        return 0.0

    from peft import PeftModel  # imported before the first reading: libraries are not the model's memory

    from studio.arena import AdapterPool
    from studio.infer import ChatSettings, Generation, load_base_model

    before = status("VmRSS")
    settings = ChatSettings(max_new_tokens=32)
    if mode == "copies":  # two independent models, base + adapter each: what sharing avoids
        kept = []
        for path in adapters:
            base_model, tokenizer = load_base_model(base)
            kept.append(PeftModel.from_pretrained(base_model, path))
            list(Generation(kept[-1], tokenizer, MESSAGES, settings))
    else:
        pool = AdapterPool(base)
        for path in adapters:
            pool.answer(pool.add(path), MESSAGES, settings)
    print(json.dumps({"rss_mb": status("VmRSS"), "peak_mb": status("VmHWM"), "after_imports_mb": before}))


def memory(model_name: str, base: Path, adapters: list[Path], rounds: int) -> dict:
    def child(mode, paths):
        cmd = [sys.executable, __file__, "--rss-child", mode, "--base", str(base), *map(str, paths)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"memory child {mode} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.splitlines()[-1])

    cases = {"one": adapters[:1], "two": adapters[:2], "copies": adapters[:2]}
    seen = {k: [] for k in cases}
    for i in range(rounds):
        for mode in (list(cases) if i % 2 == 0 else list(reversed(cases))):
            seen[mode].append(child(mode, cases[mode]))
    med = {mode: {key: round(statistics.median(r[key] for r in rows), 1) for key in rows[0]}
           for mode, rows in seen.items()}
    out = {"model": model_name, "one_adapter_rss_mb": med["one"]["rss_mb"], "two_adapters_rss_mb": med["two"]["rss_mb"],
           "two_copies_rss_mb": med["copies"]["rss_mb"],
           "one_adapter_peak_mb": med["one"]["peak_mb"], "two_adapters_peak_mb": med["two"]["peak_mb"],
           "after_imports_mb": med["one"]["after_imports_mb"]}
    out["rss_ratio"] = round(out["two_adapters_rss_mb"] / out["one_adapter_rss_mb"], 3)
    out["peak_ratio"] = round(out["two_adapters_peak_mb"] / out["one_adapter_peak_mb"], 3)
    one_model = out["one_adapter_rss_mb"] - out["after_imports_mb"]
    out["model_part_ratio"] = round((out["two_adapters_rss_mb"] - out["after_imports_mb"]) / one_model, 3) \
        if one_model > 0 else None  # the same ratio without the libraries' fixed memory
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,shared")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--memory-rounds", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for both sides (default 1: see the module docstring)")
    parser.add_argument("--rss-child", choices=("one", "two", "copies"), help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("adapters", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args.base, args.adapters, args.rss_child)
        return 0
    load = os.getloadavg()
    print(f"machine: {cpu_name()}, torch threads {torch.get_num_threads()}, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    results, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in args.models.split(","):
            base = model_path(model_name.strip())
            if base is None:
                print(f"skipped {model_name}: not present")
                continue
            adapters = [make_adapter(base, Path(tmp) / f"{model_name}-{seed}", seed) for seed in (1, 2)]
            result = speed(model_name, base, adapters[0], args.rounds, args.max_new_tokens)
            ok &= result["tokens_per_s_ratio"] >= 0.9 and result["ttft_ratio"] <= 1.1
            if not args.skip_memory:
                result.update(memory(model_name, base, adapters, args.memory_rounds))
                ok &= result["rss_ratio"] <= 1.1
            results.append(result)
            print(json.dumps(result, indent=1, ensure_ascii=False), flush=True)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("PASS" if ok else "FAIL", "(targets: studio tokens/s ≥ 0.9 × plain, TTFT ≤ 1.1 × plain, "
          "RSS two adapters ≤ 1.1 × one)")
    return 0 if ok else 1


def cpu_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return f"{os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
