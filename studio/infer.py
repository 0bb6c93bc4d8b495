"""Generation from a base model or a trained run (adapter or full model).

    model, tokenizer = load_for_inference("demo")                 # base model
    model, tokenizer = load_for_inference(run.output_dir())       # LoRA adapter or saved model
    answers = generate_answers(model, tokenizer, [[{"role": "user", "content": "Hi"}]])

Batched greedy decoding with left padding and the tokenizer's chat template; the first piece of
the Evaluate and Chat tabs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from studio.models import load_tokenizer
from studio.paths import resolve_model_path


def load_for_inference(source: str | Path):
    path = Path(resolve_model_path(str(source)))
    if (path / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    tokenizer = load_tokenizer(str(path))
    model.eval()
    return model, tokenizer


@torch.inference_mode()
def generate_answers(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int = 64,
                     batch_size: int = 16) -> list[str]:
    """Greedy answers for chat prompts (lists of role/content messages)."""
    tokenizer.padding_side = "left"
    answers = []
    for start in range(0, len(prompts), batch_size):
        texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                 for p in prompts[start:start + batch_size]]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new_tokens = out[:, batch["input_ids"].shape[1]:]
        answers += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return answers
