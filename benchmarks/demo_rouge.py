"""Does the demo recipe visibly change the demo model? ROUGE-L before vs after, same run.

    .venv/bin/python benchmarks/demo_rouge.py [recipes/demo.yaml] [key=value …]

Trains the recipe through the studio backend, then greedily answers the run's held-out test
prompts (run/data/test.jsonl) with the untouched base and with the trained adapter, and scores
both against the reference answers. Also asks the trained model the Chat tab's suggested
questions (assets/data/demo_examples.json, the language of the recipe's data) and counts the
right answers (the check of tests/integration/test_demo_examples.py). Prints which CPU the
figures come from. Targets: ROUGE-L gain ≥ 0.3, training ≤ 180 s on 2 CPU cores.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from studio.config import apply_overrides, load_recipe
from studio.infer import generate_answers, load_for_inference
from studio.metrics import rouge
from studio.models import detect_device
from studio.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from integration.test_demo_examples import EXPECTED, examples  # noqa: E402  (one source for the check)


def score(source, rows) -> tuple[float, list[str]]:
    model, tokenizer = load_for_inference(source)
    answers = generate_answers(model, tokenizer, [r["prompt"] for r in rows])
    refs = [r["completion"][0]["content"] for r in rows]
    return rouge(answers, refs)["rougeL"], answers


def main(argv: list[str]) -> None:
    recipe = next((a for a in argv if "=" not in a), str(ROOT / "recipes" / "demo.yaml"))
    cfg = apply_overrides(load_recipe(recipe), [a for a in argv if "=" in a])
    with tempfile.TemporaryDirectory() as home:
        ws = Workspace(Path(home))
        run = ws.jobs.start(cfg)
        ws.jobs.wait()
        status = run.status()
        assert status["state"] == "completed", status["message"]
        rows = [json.loads(line) for line in (run.path / "data" / "test.jsonl").read_text().splitlines()]
        base, base_answers = score(cfg.model.path, rows)
        tuned, tuned_answers = score(run.output_dir(), rows)
        lang = "zh" if cfg.data.path.endswith("zh") else "en"
        questions = examples()[lang]
        model, tokenizer = load_for_inference(run.output_dir())
        answers = generate_answers(model, tokenizer, [[{"role": "user", "content": q}] for q in questions])
        right = sum(EXPECTED[q] in a for q, a in zip(questions, answers))
    seconds = status["training_ended_at"] - status["training_started_at"]
    for row, b, t in list(zip(rows, base_answers, tuned_answers))[:3]:
        print(f"Q: {row['prompt'][-1]['content']!r}\n  base : {b!r}\n  tuned: {t!r}\n  ref  : {row['completion'][0]['content']!r}")
    result = {"recipe": recipe, "held_out_prompts": len(rows), "train_seconds": round(seconds, 1),
              "steps": status["step"], "rougeL_base": round(base, 3), "rougeL_tuned": round(tuned, 3),
              "gain": round(tuned - base, 3), "examples_right": f"{right}/{len(questions)} ({lang})",
              "cpu": cpu_description()}
    print(json.dumps(result, indent=1))
    print("PASS" if result["gain"] >= 0.3 and seconds <= 180 else "FAIL",
          "(targets: gain ≥ 0.3, training ≤ 180 s)")


def cpu_description() -> str:
    import os

    device = detect_device()
    if device.cuda:
        return device.gpu_name
    bf16 = "native bf16 (" + ", ".join(sorted(device.cpu_flags)) + ")" if device.cpu_bf16 else "no native bf16"
    return f"{device.cpu_capability}, {bf16}, {os.cpu_count()} cores"


if __name__ == "__main__":
    main(sys.argv[1:])
