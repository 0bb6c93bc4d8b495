"""Batched generation and reference loss for evaluation: the model side of the Evaluate tab.

    settings = GenerationSettings(batch_size=16, max_new_tokens=64)          # greedy by default
    model, tokenizer = load_model_for_eval("demo")                          # base model
    model = attach_adapter(model, run.path / "adapter")                    # LoRA on the same base
    answers = generate_batched(model, tokenizer, prompts, settings, on_batch=print, stop_event=ev)
    loss, n_tokens = reference_loss(model, tokenizer, prompts, answers_ref, batch_size=16)

Prompts are chat message lists (`[{"role": "user", "content": …}]`), put through the model's
chat template with the generation prompt. Generation is batched with left padding; prompts are
sorted by length first so a batch holds prompts of similar length (less padding: faster, and
closer to what an unpadded loop produces), and the answers come back in the caller's order.
Greedy decoding unless `do_sample` is chosen, then `seed` makes it repeatable.

The reference loss is what the model thinks of the reference answers: one forward pass per
batch over prompt + reference (the chat template applied, as TRL trains), labels on the answer
tokens only, the token-weighted mean over the whole set (perplexity = exp of it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from studio.errors import UserError
from studio.models import load_tokenizer
from studio.paths import resolve_model_path
from studio.startup import wait_for_warm_up

MAX_LOSS_TOKENS = 1024  # prompt + reference beyond this are cut for the loss pass (memory bound)


@dataclass(frozen=True)
class GenerationSettings:
    batch_size: int = 16
    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 50
    seed: int = 42

    def key_dict(self) -> dict:
        """What changes the outputs (the cache key): sampling knobs count only when sampling.
        The batch size stays in: left padding can change float rounding, so outputs may differ."""
        data = asdict(self)
        if not self.do_sample:
            for name in ("temperature", "top_p", "top_k", "seed"):
                data.pop(name)
        return data

    @classmethod
    def from_dict(cls, data: dict | None) -> "GenerationSettings":
        known = {f.name: f.type for f in fields(cls)}
        values = {}
        for name, value in (data or {}).items():
            if name in known and value is not None:
                values[name] = value
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if not 1 <= int(self.batch_size) <= 512:
            raise UserError("evaluate.bad_batch_size", key="evaluate.batch_size", value=self.batch_size)
        if not 1 <= int(self.max_new_tokens) <= 4096:
            raise UserError("evaluate.bad_max_new_tokens", key="evaluate.max_new_tokens",
                            value=self.max_new_tokens)
        if self.do_sample and not (float(self.temperature) > 0 and 0 < float(self.top_p) <= 1):
            raise UserError("evaluate.bad_sampling", key="evaluate.temperature")
        if not 0 <= int(self.seed) <= MAX_SEED:
            raise UserError("evaluate.bad_seed", key="evaluate.seed", value=self.seed, max=MAX_SEED)


MAX_SEED = 2**32 - 1  # numpy's seeds (transformers.set_seed seeds numpy too) are 32-bit


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dtype():
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32  # CPUs: fp32 (bf16 is emulated, and slow, on many of them)


def load_model_for_eval(source: str | Path, trust_remote_code: bool = False):
    """A causal LM (base model or full fine-tuned model folder) and its tokenizer, in eval mode."""
    wait_for_warm_up()
    import transformers
    from transformers import AutoModelForCausalLM

    transformers.utils.logging.disable_progress_bar()
    path = resolve_model_path(str(source))
    from studio.hub import token_kwargs

    model = AutoModelForCausalLM.from_pretrained(path, dtype=_dtype(), trust_remote_code=trust_remote_code,
                                                 **token_kwargs())
    tokenizer = load_tokenizer(path, trust_remote_code)
    model.to(device()).eval()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def attach_adapter(model, adapter_dir: str | Path):
    """The base model with a trained LoRA (or other PEFT) adapter on top, safetensors only."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise UserError("evaluate.adapter_not_safetensors", path=str(adapter_dir))
    return PeftModel.from_pretrained(model, str(adapter_dir)).to(device()).eval()


def prompt_texts(tokenizer, prompts: list[list[dict]], tools: list | None = None) -> list[str]:
    """Chat prompts -> the text the model continues (its template with the generation prompt)."""
    texts = []
    for i, messages in enumerate(prompts):
        kwargs = {"tools": tools[i]} if tools and tools[i] else {}
        try:
            texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                       **kwargs))
        except Exception as exc:  # e.g. a template that insists on alternating roles
            raise UserError("evaluate.template_refused", row=i + 1, detail=str(exc)[:200]) from None
    return texts


def _batches(order: list[int], size: int):
    for start in range(0, len(order), size):
        yield order[start:start + size]


@torch.inference_mode()
def generate_batched(model, tokenizer, prompts: list[list[dict]], settings: GenerationSettings,
                     on_batch=None, stop_event=None, tools: list | None = None) -> list[str] | None:
    """Answers for chat prompts, in their order; None when `stop_event` was set between batches.

    `on_batch(n_done)` is called after each batch (progress bars)."""
    from transformers import set_seed

    texts = prompt_texts(tokenizer, prompts, tools)
    tokenizer.padding_side = "left"  # generation continues from the right end of every row
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    sampling = ({"do_sample": True, "temperature": float(settings.temperature), "top_p": float(settings.top_p),
                 "top_k": int(settings.top_k)} if settings.do_sample
                else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None})
    if settings.do_sample:
        set_seed(int(settings.seed))
    answers: list[str | None] = [None] * len(texts)
    done = 0
    for idx in _batches(order, int(settings.batch_size)):
        if stop_event is not None and stop_event.is_set():
            return None
        batch = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(model.device)
        out = model.generate(**batch, max_new_tokens=int(settings.max_new_tokens),
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             **sampling)
        decoded = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        for i, text in zip(idx, decoded):
            answers[i] = text.strip()
        done += len(idx)
        if on_batch:
            on_batch(done)
    return answers  # type: ignore[return-value]


def _loss_ids(tokenizer, prompt: list[dict], answer: str, tools=None) -> tuple[list[int], int]:
    """Token ids of prompt + answer through the chat template, and where the answer starts
    (the prompt's length with the generation prompt, as TRL's completion mask counts it)."""
    kwargs = {"tools": tools} if tools else {}
    prompt_ids = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True,
                                               return_dict=True, **kwargs)["input_ids"]
    full_ids = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": answer}],
                                             tokenize=True, return_dict=True, **kwargs)["input_ids"]
    return list(full_ids)[:MAX_LOSS_TOKENS], min(len(prompt_ids), MAX_LOSS_TOKENS)


@torch.inference_mode()
def reference_loss(model, tokenizer, prompts: list[list[dict]], answers: list[str], batch_size: int = 16,
                   on_batch=None, stop_event=None, tools: list | None = None) -> tuple[float | None, int] | None:
    """(mean loss per answer token over the set, answer tokens counted); None when stopped.
    The loss is None when no answer has a token left to score."""
    rows = []
    for i, (prompt, answer) in enumerate(zip(prompts, answers)):
        try:
            rows.append(_loss_ids(tokenizer, prompt, answer, tools[i] if tools else None))
        except Exception as exc:
            raise UserError("evaluate.template_refused", row=i + 1, detail=str(exc)[:200]) from None
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total, count, done = 0.0, 0, 0
    for idx in _batches(order, int(batch_size)):
        if stop_event is not None and stop_event.is_set():
            return None
        width = max(len(rows[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        labels = torch.full((len(idx), width), -100, dtype=torch.long)
        for r, i in enumerate(idx):  # right padding: positions stay those of an unpadded pass
            full, start = rows[i]
            ids[r, :len(full)] = torch.tensor(full)
            mask[r, :len(full)] = 1
            labels[r, start:len(full)] = torch.tensor(full[start:])
        dev = model.device
        logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits.float()
        logits = logits[:, -ids.shape[1]:]  # prompt tuning puts its virtual tokens' logits first
        shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(dev)
        nll = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]),
                                                shift_labels.reshape(-1), ignore_index=-100, reduction="sum")
        total += float(nll)
        count += int((shift_labels != -100).sum())
        done += len(idx)
        if on_batch:
            on_batch(done)
    return (total / count if count else None), count


def perplexity(loss: float | None) -> float | None:
    if loss is None or not math.isfinite(loss):
        return None
    return math.exp(min(loss, 700.0))  # exp overflows a float past ~709
