"""Batched evaluation generation vs the usual one-example-at-a-time `model.generate` loop.

    .venv/bin/python benchmarks/eval_speed.py [--model PATH] [--n 200] [--batch-size 32]
                                              [--max-new-tokens 32] [--data demo-en]

Same model, same 200 prompts (the first N examples of the data, chat template applied), greedy
decoding. The loop is the tutorial's: tokenize one prompt, `model.generate`, decode. The batched
path is studio.generation.generate_batched (what the Evaluate tab and `studio eval` run): prompts
sorted by length, left padding, batches of --batch-size. Prints both wall times, the speed-up,
and how many greedy outputs are identical (padding may change float rounding). Targets: ≥ 8×
faster, identical on ≥ 98 % of examples. Default model: the shared fixture aidreams-260k when
present (else the bundled demo model); run again with --model demo for the other.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.data import load_rows, to_sft_records  # noqa: E402
from studio.generation import GenerationSettings, generate_batched, load_model_for_eval, prompt_texts  # noqa: E402

SHARED_MODEL = ROOT.parent / "shared" / "fixtures" / "models" / "aidreams-260k"


@torch.inference_mode()
def one_at_a_time(model, tokenizer, prompts, max_new_tokens: int) -> list[str]:
    answers = []
    for text in prompt_texts(tokenizer, prompts):
        inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                             top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
        answers.append(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return answers


def cpu_description() -> str:
    from studio.models import detect_device

    device = detect_device()
    if device.cuda:
        return device.gpu_name
    return f"{device.cpu_capability}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SHARED_MODEL) if SHARED_MODEL.is_dir() else "demo")
    parser.add_argument("--data", default="demo-en")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args(argv)

    import transformers

    transformers.utils.logging.set_verbosity_error()  # a config with max_length warns on every call
    records = to_sft_records(load_rows(args.data))[:args.n]
    prompts = [r["prompt"] for r in records]
    model, tokenizer = load_model_for_eval(args.model)
    settings = GenerationSettings(batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    generate_batched(model, tokenizer, prompts[:args.batch_size], settings)  # warm-up, both paths
    one_at_a_time(model, tokenizer, prompts[:2], args.max_new_tokens)

    started = time.perf_counter()
    batched = generate_batched(model, tokenizer, prompts, settings)
    batched_s = time.perf_counter() - started
    started = time.perf_counter()
    looped = one_at_a_time(model, tokenizer, prompts, args.max_new_tokens)
    looped_s = time.perf_counter() - started

    same = sum(a == b for a, b in zip(batched, looped))
    result = {"model": Path(args.model).name, "examples": len(prompts), "batch_size": args.batch_size,
              "max_new_tokens": args.max_new_tokens, "one_at_a_time_s": round(looped_s, 2),
              "batched_s": round(batched_s, 2), "speedup": round(looped_s / batched_s, 1),
              "identical_outputs": f"{same}/{len(prompts)} ({same / len(prompts):.1%})",
              "device": cpu_description()}
    print(json.dumps(result, indent=1, ensure_ascii=False))
    ok = looped_s / batched_s >= 8 and same / len(prompts) >= 0.98
    print("PASS" if ok else "FAIL", "(targets: ≥ 8× faster, identical greedy outputs on ≥ 98 %)")
    for a, b in [(a, b) for a, b in zip(batched, looped) if a != b][:3]:
        print(f"  differs: batched {a!r}\n           loop    {b!r}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
