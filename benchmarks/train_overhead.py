"""Studio backend vs a plain TRL script: training tokens/s on the same model, data and settings.

    .venv/bin/python benchmarks/train_overhead.py [--steps 60] [--rounds 2]

Runs back to back in one process, alternating A/B order (plain, studio, studio, plain, …) so
slow drift of a noisy machine hits both sides equally. The studio side runs exactly as the UI
runs it — background thread, RunRecorder callback writing metrics.jsonl and status.json every
step — with a reader polling the run folder once a second like an open browser tab. Target:
studio / plain >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, PrinterCallback
from trl import SFTConfig, SFTTrainer

from studio.config import StudioConfig, apply_overrides
from studio.data import load_rows, split_rows, to_sft_records
from studio.models import load_tokenizer
from studio.paths import DEMO_MODEL
from studio.workspace import Workspace

SETTINGS = dict(batch_size=16, max_length=128, learning_rate=2e-3, lora_r=16, lora_alpha=32,
                lora_dropout=0.05, seed=42)


def plain_trl(steps: int, out: Path) -> float:
    """What a user would write by hand with TRL; returns training tokens/s."""
    records = to_sft_records(load_rows("demo-en"))
    train, val, _ = split_rows(records, 0.2, 0.1, seed=SETTINGS["seed"])
    tokenizer = load_tokenizer(str(DEMO_MODEL))
    model = AutoModelForCausalLM.from_pretrained(DEMO_MODEL)
    args = SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=SETTINGS["batch_size"],
                     per_device_eval_batch_size=SETTINGS["batch_size"], learning_rate=SETTINGS["learning_rate"],
                     lr_scheduler_type="cosine", warmup_steps=0.05, max_length=SETTINGS["max_length"],
                     logging_steps=1, eval_strategy="steps", eval_steps=max(1, steps // 10),
                     save_strategy="no", bf16=False, use_cpu=True, activation_checkpointing=False,
                     report_to="none", disable_tqdm=True, seed=SETTINGS["seed"])
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(train),
                         eval_dataset=Dataset.from_list(val), processing_class=tokenizer,
                         peft_config=LoraConfig(r=SETTINGS["lora_r"], lora_alpha=SETTINGS["lora_alpha"],
                                                lora_dropout=SETTINGS["lora_dropout"],
                                                target_modules="all-linear", task_type="CAUSAL_LM"))
    trainer.remove_callback(PrinterCallback)  # no per-step printing on either side
    began = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - began
    return trainer._total_train_tokens / seconds


def studio_backend(steps: int, home: Path) -> float:
    ws = Workspace(home)
    cfg = apply_overrides(StudioConfig(), [f"{k}={v}" for k, v in SETTINGS.items()] +
                          [f"max_steps={steps}", "eval_every=0"])
    run = ws.jobs.start(cfg)
    offset = 0
    while ws.jobs.busy():  # an open browser tab: one cheap poll per second
        _, offset = run.read_metrics_from(offset)
        run.progress()
        time.sleep(1.0)
    status = run.status()
    assert status["state"] == "completed", status
    tokens = [e["tokens"] for e in run.read_metrics() if e.get("loss") is not None][-1]
    return tokens / (status["training_ended_at"] - status["training_started_at"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    plain, studio = [], []
    with tempfile.TemporaryDirectory() as tmp:
        plain_trl(5, Path(tmp) / "warm")  # warm caches and imports before measuring
        for i in range(args.rounds):
            order = [("plain", plain), ("studio", studio)] if i % 2 == 0 else [("studio", studio), ("plain", plain)]
            for name, sink in order:
                where = Path(tmp) / f"{name}{i}"
                sink.append(plain_trl(args.steps, where) if name == "plain" else studio_backend(args.steps, where))
                print(f"round {i} {name:6} {sink[-1]:9.0f} tokens/s", flush=True)
    result = {"plain_tokens_per_s": sum(plain) / len(plain), "studio_tokens_per_s": sum(studio) / len(studio)}
    result["ratio"] = result["studio_tokens_per_s"] / result["plain_tokens_per_s"]
    print(json.dumps(result, indent=1))
    print("PASS" if result["ratio"] >= 0.95 else "FAIL", "(target: studio/plain >= 0.95)")


if __name__ == "__main__":
    main()
