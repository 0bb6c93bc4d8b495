"""Generation from a base model or a trained run (adapter or full model).

    model, tokenizer = load_for_inference("demo")                 # base model
    model, tokenizer = load_for_inference(run.output_dir())       # LoRA adapter or saved model
    answers = generate_answers(model, tokenizer, [[{"role": "user", "content": "Hi"}]])

Batched greedy decoding with left padding and the tokenizer's chat template; the first piece of
the Evaluate and Chat tabs. `stream_reply` streams one chat answer; `chat_messages` turns chat
history in any shape gradio or a client sends (content as text or as a list of parts) into
plain role/content messages.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from studio.models import load_tokenizer
from studio.paths import resolve_model_path


def load_for_inference(source: str | Path):
    import transformers

    transformers.utils.logging.disable_progress_bar()
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
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new_tokens = out[:, batch["input_ids"].shape[1]:]
        answers += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return answers


class ModelCache:
    """Keeps the most recently used models in memory so a chat does not reload every turn."""

    def __init__(self, size: int = 2):
        self.size = size
        self._models: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def get(self, source: str):
        with self._lock:
            if source not in self._models:
                if len(self._models) >= self.size:
                    self._models.pop(next(iter(self._models)))
                self._models[source] = load_for_inference(source)
            return self._models[source]


def content_text(content) -> str:
    """A chat message's content as plain text. Gradio 6 hands history back as a list of parts
    ({"type": "text", "text": …}, files, components); only the text parts are kept."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        text = content.get("text")
        return text if isinstance(text, str) else ""
    if isinstance(content, (list, tuple)):
        return "\n".join(part for part in (content_text(p) for p in content) if part)
    return str(content)


def chat_messages(history: list[dict] | None) -> list[dict]:
    """Chat history (from the Chatbot, an API client, or our own code) -> role/content messages
    with text content, ready for a chat template. Empty messages are left out."""
    messages = []
    for message in history or []:
        role = message.get("role") if isinstance(message, dict) else None
        text = content_text(message.get("content")) if role else ""
        if role in ("system", "user", "assistant") and text.strip():
            messages.append({"role": role, "content": text})
    return messages


def stream_reply(model, tokenizer, messages: list[dict], max_new_tokens: int = 128,
                 temperature: float = 0.0, top_p: float = 1.0):
    """Yield the growing reply text as tokens arrive (greedy when temperature is 0).
    `messages` may be raw chat history: its content is normalised to text first."""
    from transformers import TextIteratorStreamer

    messages = chat_messages(messages)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
    kwargs = dict(**inputs, streamer=streamer, max_new_tokens=max_new_tokens,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **sampling)
    worker = threading.Thread(target=lambda: torch.inference_mode()(model.generate)(**kwargs), daemon=True)
    worker.start()
    reply = ""
    for piece in streamer:
        reply += piece
        yield reply
    worker.join()
