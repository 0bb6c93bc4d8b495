"""Generation from a base model or a trained run (adapter or full model).

    model, tokenizer = load_for_inference("demo")                 # base model
    model, tokenizer = load_for_inference(run.output_dir())       # LoRA adapter or saved model
    answers = generate_answers(model, tokenizer, [[{"role": "user", "content": "Hi"}]])

Batched greedy decoding with left padding and the tokenizer's chat template; the first piece of
the Evaluate and Chat tabs. `stream_reply` streams one chat answer; `chat_messages` turns chat
history in any shape gradio or a client sends (content as text or as a list of parts) into
plain role/content messages.

For the arena and `studio serve` (studio/arena.py, studio/serve.py): `load_base_model` loads
safetensors only (`require_safetensors` refuses pickle-only folders), `ChatSettings` holds every
chat setting (temperature, top-p, top-k, repetition penalty, stop sequences, seed) and
`Generation(model, tokenizer, messages, settings)` streams one answer with stop sequences, a
cancel event and its finish reason and token counts.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from studio.generation import MAX_SEED
from studio.models import load_tokenizer
from studio.paths import resolve_model_path
from studio.startup import wait_for_warm_up


def load_for_inference(source: str | Path):
    wait_for_warm_up()
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
                     batch_size: int = 16, settings: ChatSettings | None = None) -> list[str]:
    """Greedy answers for chat prompts (lists of role/content messages). With `settings` (a
    ChatSettings) its sampling, max new tokens, seed and stop sequences apply instead."""
    tokenizer.padding_side = "left"
    if settings is None:
        options = {"max_new_tokens": max_new_tokens, "do_sample": False}
    else:
        options = settings.generate_kwargs()
        if settings.seed is not None and settings.temperature > 0:
            torch.manual_seed(settings.seed)
    answers = []
    for start in range(0, len(prompts), batch_size):
        texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                 for p in prompts[start:start + batch_size]]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        out = model.generate(**batch, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             **options)
        new_tokens = out[:, batch["input_ids"].shape[1]:]
        answers += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    if settings is not None and settings.stop:  # cut after the fact: a batch runs to its longest answer
        answers = [a[:_stop_at(a, settings.stop)] if _stop_at(a, settings.stop) is not None else a for a in answers]
    return [a.strip() for a in answers]


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


# --- Chat, arena and serve (issue 8): safetensors-only loading and one streaming generator with
# every chat setting. The functions above keep their behaviour; these are used beside them.

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# Files a training run leaves that are pickles but never weights (never loaded, never exported).
NOT_WEIGHTS = {"training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth", "scaler.pt"}


def require_safetensors(folder: str | Path, kind: str = "model") -> Path:
    """`folder` (a local model or adapter folder) -> its path, or UserError when its weights are
    pickles only (.bin/.pt…): unpickling runs code, so such folders are refused, never loaded.
    Hub ids are not checked here: they load with use_safetensors=True, which refuses pickles."""
    from studio.errors import UserError

    path = Path(folder)
    if not path.is_dir():
        return path
    if any(path.glob("*.safetensors")):
        return path
    pickles = sorted(p.name for p in path.iterdir()
                     if p.suffix.lower() in PICKLE_SUFFIXES and p.name not in NOT_WEIGHTS)
    if pickles:
        raise UserError("arena.pickle_refused", key=f"{kind}.path", path=str(path), files=", ".join(pickles[:3]))
    raise UserError("arena.no_weights", key=f"{kind}.path", path=str(path))


def load_base_model(source: str | Path, trust_remote_code: bool = False):
    """A plain (non-PEFT) causal LM and its tokenizer, from safetensors only, ready to generate."""
    wait_for_warm_up()
    import transformers
    from transformers import AutoModelForCausalLM

    transformers.utils.logging.disable_progress_bar()
    path = resolve_model_path(str(source))
    require_safetensors(path, "model")
    from studio.hub import token_kwargs

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True,
                                                 trust_remote_code=trust_remote_code, **token_kwargs())
    tokenizer = load_tokenizer(path, trust_remote_code)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if torch.cuda.is_available():  # adapters attached later follow the base onto the GPU
        model.to("cuda")
    model.eval()
    return model, tokenizer


@dataclass
class ChatSettings:
    """Sampling settings of one chat answer (greedy when temperature is 0). `stop` sequences end
    the answer where they appear; they are not part of it."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self):
        from studio.errors import UserError

        try:
            self.max_new_tokens = int(self.max_new_tokens)
            self.temperature, self.top_p = float(self.temperature), float(self.top_p)
            self.top_k, self.repetition_penalty = int(self.top_k or 0), float(self.repetition_penalty)
            self.seed = None if self.seed in (None, "") else int(self.seed)
        except (TypeError, ValueError):
            raise UserError("arena.bad_settings") from None
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or ())
        self.stop = tuple(s for s in stop if isinstance(s, str) and s)[:8]
        checks = {"max_new_tokens": 1 <= self.max_new_tokens <= MAX_NEW_TOKENS,
                  "temperature": 0 <= self.temperature <= 5, "top_p": 0 < self.top_p <= 1,
                  "top_k": 0 <= self.top_k <= 10000, "repetition_penalty": 0 < self.repetition_penalty <= 10,
                  # torch.manual_seed takes 64 bits and fails mid-answer on more; one range studio-wide
                  "seed": self.seed is None or 0 <= self.seed <= MAX_SEED}
        for name, ok in checks.items():
            if not ok:
                raise UserError("arena.bad_setting", key=f"chat.{name}", name=name, value=str(getattr(self, name)))

    def to_dict(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "top_k": self.top_k, "repetition_penalty": self.repetition_penalty, "stop": list(self.stop),
                "seed": self.seed}

    def generate_kwargs(self) -> dict:
        kwargs = {"max_new_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty}
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        else:  # greedy: say so, or the model's generation_config may still sample
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs


MAX_NEW_TOKENS = 4096


class Generation:
    """One streamed chat answer: iterate for the growing text; then `finish_reason` ("stop" or
    "length"), `prompt_tokens` and `completion_tokens` say how it ended. `cancel()` (from any
    thread) ends it after the current token, and so does setting the `cancel` event passed in;
    that event is only read (never set by the generation), so one event can serve many. Text is
    released token by token; stop sequences are held back while they may still be forming, so
    the text shown never contains one.

        gen = Generation(model, tokenizer, messages, ChatSettings(stop=["###"]))
        for text in gen: print(text)
    """

    def __init__(self, model, tokenizer, messages: list[dict], settings: ChatSettings | None = None,
                 cancel: threading.Event | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.messages = chat_messages(messages)
        self.settings = settings or ChatSettings()
        # The caller's event is only read, never set: one event (a session's Stop button) can
        # serve many generations. Ending for our own reasons sets our own event.
        self.cancelled = cancel
        self._ended = threading.Event()
        self.finish_reason: str | None = None
        self.prompt_tokens = self.completion_tokens = 0
        self.text = ""

    def cancel(self) -> None:
        """End this generation after the current token (the event given as `cancel` is left as is)."""
        self._ended.set()

    def __iter__(self):
        from transformers import StoppingCriteria, StoppingCriteriaList

        tokenizer, settings = self.tokenizer, self.settings
        prompt = tokenizer.apply_chat_template(self.messages, tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        self.prompt_tokens = start = inputs["input_ids"].shape[1]
        counted = {"new": 0}
        cancelled, ended = self.cancelled, self._ended

        class Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                counted["new"] = input_ids.shape[1] - start
                return ended.is_set() or (cancelled is not None and cancelled.is_set())

        streamer = _token_streamer_class()(tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def work():
            try:
                if settings.seed is not None and settings.temperature > 0:
                    torch.manual_seed(settings.seed)
                with torch.inference_mode():
                    self.model.generate(**inputs, streamer=streamer, pad_token_id=tokenizer.pad_token_id,
                                        eos_token_id=tokenizer.eos_token_id,
                                        stopping_criteria=StoppingCriteriaList([Cancel()]),
                                        **settings.generate_kwargs())
            except BaseException as exc:  # surfaced to the reader below, never left hanging
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=work, name="chat-generate", daemon=True)
        worker.start()
        raw, shown, stopped = "", "", False
        try:
            for piece in streamer:
                raw += piece
                cut = _stop_at(raw, settings.stop)
                if cut is not None:
                    raw, stopped = raw[:cut], True
                    ended.set()
                visible = raw if stopped else raw[:len(raw) - _held_back(raw, settings.stop)]
                if len(visible) > len(shown):
                    shown = visible
                    self.text = shown
                    yield shown
                if stopped:
                    break
        finally:
            ended.set()  # a reader that went away (closed stream) ends the generation too
            worker.join()
        if failure:
            raise failure[0]
        if not stopped and raw != shown:
            shown = self.text = raw
            yield shown
        self.completion_tokens = counted["new"]
        self.finish_reason = "length" if (not stopped and counted["new"] >= settings.max_new_tokens) else "stop"


@functools.cache
def _token_streamer_class():
    """The streamer class, built on first use (transformers' generation code loads lazily)."""
    from transformers import TextIteratorStreamer

    class TokenStreamer(TextIteratorStreamer):
        """TextIteratorStreamer that releases text after every token instead of at word ends.

        The stock streamer holds text back until a space or newline (the first word costs an extra
        token or two of waiting) and decodes every token generated so far on each step. This one
        decodes a short window (the previous piece and the new tokens) and releases what the new
        tokens added, holding back only an incomplete UTF-8 character ("\ufffd" at the end). The
        window starts one piece back so tokenizers that drop a leading space at the start of a
        decode ("▁sky" -> "sky") still give " sky"."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.prefix_offset = self.read_offset = 0

        def put(self, value):
            if len(value.shape) > 1:
                value = value[0]
            if self.skip_prompt and self.next_tokens_are_prompt:
                self.next_tokens_are_prompt = False
                return
            self.token_cache.extend(value.tolist())
            piece = self._piece()
            if piece and not piece.endswith("\ufffd"):
                self.prefix_offset, self.read_offset = self.read_offset, len(self.token_cache)
                self.on_finalized_text(piece)
                # Let the waiting reader take the GIL now: otherwise this thread keeps it until
                # the interpreter's switch interval (5 ms), which is most of a token on small models.
                time.sleep(0)

        def _piece(self) -> str:
            prefix = self.tokenizer.decode(self.token_cache[self.prefix_offset:self.read_offset], **self.decode_kwargs)
            text = self.tokenizer.decode(self.token_cache[self.prefix_offset:], **self.decode_kwargs)
            return text[len(prefix):] if len(text) > len(prefix) else ""

        def end(self):
            piece = self._piece() if self.token_cache else ""
            self.token_cache, self.prefix_offset, self.read_offset = [], 0, 0
            self.next_tokens_are_prompt = True
            self.on_finalized_text(piece, stream_end=True)

    return TokenStreamer


def _stop_at(text: str, stops: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters of `text` could be the start of a stop sequence."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if stop.startswith(text[-n:]):
                longest = n
                break
    return longest
