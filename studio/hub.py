"""The Hugging Face Hub: curated starting models, whether the Hub can be reached, and the token.

    for entry in CURATED: entry.id, entry.params, entry.license, entry.gated    # small instruct models
    lora_memory(entry)                  # {"gpu": bytes, "cpu": bytes}: a LoRA run with default settings
    hub_status()                        # "offline" | "unreachable" | "online" (probed, cached HUB_STATUS_TTL s)
    status_message()                    # Msg: that status and where the token comes from, in one line
    set_token("hf_...")                 # the form's token for this process ("" forgets it)
    AutoConfig.from_pretrained(repo, token=token())    # None: huggingface_hub's own (HF_TOKEN, login)
    require_hub(source, "data.path", kind="dataset")   # UserError at once when the Hub cannot answer
    redact(text)                        # error text with any token replaced by ***

Why a probe, and why cached: when the Hub is unreachable (no route, a proxy that never answers),
huggingface_hub and datasets wait on timeouts and retries: minutes for one dataset. One short
probe (`models.hub_reachable`, HUB_PROBE_SECONDS) says so in seconds, and its answer is kept for
HUB_STATUS_TTL seconds, so a form that re-checks on every keystroke, and the data check and the
estimate asking at the same moment, wait on one probe at most. Offline mode (HF_HUB_OFFLINE /
TRANSFORMERS_OFFLINE) is read from huggingface_hub and never probed.

The token lives only in this process (`_token`): never in a config, a run folder or a recipe (the
config has no field for it), never sent back to the page, and `redact` takes it out of any error
text. The studio passes it as `token=` to from_pretrained / load_dataset; when it is unset they
get None and huggingface_hub uses HF_TOKEN or the machine's `hf auth login`, as usual.
A Space shared by strangers (demo mode) offers no token field: one process-wide token would be
every visitor's.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from studio.errors import UserError
from studio.i18n import Msg

HUB_STATUS_TTL = 30.0  # seconds a probe's answer is trusted


@dataclass(frozen=True)
class HubModel:
    """A curated starting model. `params` is the total parameter count and `lora_params` what LoRA
    (the studio's default r=16 on all linear layers) trains; both are what transformers and PEFT
    count on the architecture in `arch` (tests/integration/test_hub_models.py checks them)."""

    id: str
    params: int
    lora_params: int
    license: str
    gated: bool  # the license must be accepted on the model's Hub page, and a token given
    arch: dict = field(default_factory=dict)  # model_type + config.json values (hidden_size, ...)

    @property
    def name(self) -> str:
        return self.id.split("/")[-1]

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.id}"


def _arch(model_type, hidden, intermediate, layers, heads, kv_heads, vocab, **extra) -> dict:
    return {"model_type": model_type, "hidden_size": hidden, "intermediate_size": intermediate,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
            "vocab_size": vocab, "tie_word_embeddings": True, **extra}


# Values from each model's config.json on the Hub; all eight tie their input and output embeddings.
CURATED: tuple[HubModel, ...] = (
    HubModel("HuggingFaceTB/SmolLM2-135M-Instruct", 134_515_008, 4_884_480, "apache-2.0", False,
             _arch("llama", 576, 1536, 30, 9, 3, 49152)),
    HubModel("HuggingFaceTB/SmolLM2-360M-Instruct", 361_821_120, 8_683_520, "apache-2.0", False,
             _arch("llama", 960, 2560, 32, 15, 5, 49152)),
    HubModel("Qwen/Qwen2.5-0.5B-Instruct", 494_032_768, 8_798_208, "apache-2.0", False,
             _arch("qwen2", 896, 4864, 24, 14, 2, 151936)),
    HubModel("Qwen/Qwen3-0.6B", 596_049_920, 10_092_544, "apache-2.0", False,
             _arch("qwen3", 1024, 3072, 28, 16, 8, 151936, head_dim=128)),
    HubModel("google/gemma-3-1b-it", 999_885_952, 13_045_760, "gemma", True,
             _arch("gemma3_text", 1152, 6912, 26, 4, 1, 262144, head_dim=256)),
    HubModel("meta-llama/Llama-3.2-1B-Instruct", 1_235_814_400, 11_272_192, "llama3.2", True,
             _arch("llama", 2048, 8192, 16, 32, 8, 128256, head_dim=64)),
    HubModel("Qwen/Qwen2.5-1.5B-Instruct", 1_543_714_304, 18_464_768, "apache-2.0", False,
             _arch("qwen2", 1536, 8960, 28, 12, 2, 151936)),
    HubModel("HuggingFaceTB/SmolLM2-1.7B-Instruct", 1_711_376_384, 18_087_936, "apache-2.0", False,
             _arch("llama", 2048, 8192, 24, 32, 32, 49152)),
)


def curated(model_id: str) -> HubModel | None:
    return next((m for m in CURATED if m.id == model_id), None)


def model_choices() -> list[tuple[str, str]]:
    """(label, Hub id) for a dropdown: the id and its size (language-neutral)."""
    from studio.estimate import human_count

    return [(f"{m.id} · {human_count(m.params)}", m.id) for m in CURATED]


def lora_memory(entry: HubModel) -> dict[str, int]:
    """Peak memory of a LoRA run on `entry` with the studio's default settings (r=16 on all linear
    layers, batch 8, 256 tokens; bf16 on a GPU, fp32 on a CPU), from studio.estimate's formula."""
    from studio.config import StudioConfig
    from studio.estimate import memory_bytes

    a = entry.arch
    counts = {"total": entry.params, "trainable": entry.lora_params,
              "linear": entry.params - a["vocab_size"] * a["hidden_size"],
              "hidden": a["hidden_size"], "layers": a["num_hidden_layers"],
              "intermediate": a["intermediate_size"], "heads": a["num_attention_heads"],
              "vocab": a["vocab_size"]}
    cfg = StudioConfig()
    return {device: memory_bytes(counts, cfg, device, cfg.train.max_length) for device in ("gpu", "cpu")}


# ---- is the Hub there? --------------------------------------------------------------------------

_status: tuple[float, str] | None = None  # (when probed, answer)
_status_lock = threading.Lock()  # concurrent callers wait on one probe, not one probe each


def is_offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode()


def hub_status(max_age: float = HUB_STATUS_TTL) -> str:
    """'offline' (switched off by the environment), 'unreachable' (the probe got no answer within
    HUB_PROBE_SECONDS) or 'online'. A probe's answer is reused for `max_age` seconds."""
    global _status
    if is_offline():
        return "offline"
    with _status_lock:
        if _status is None or time.monotonic() - _status[0] > max_age:
            from studio.models import hub_reachable

            _status = (time.monotonic(), "online" if hub_reachable() else "unreachable")
        return _status[1]


def forget_status() -> None:
    """Probe again at the next question (tests; a user who just fixed the connection)."""
    global _status
    with _status_lock:
        _status = None


def require_hub(source: str, key: str, kind: str = "model") -> None:
    """UserError at once when `source` (a Hub id not found locally) cannot be fetched because the
    Hub is unreachable; offline mode is left to the caller (a cached copy may still load)."""
    if hub_status() == "unreachable":
        code = {"model": "hub.model_unreachable", "dataset": "hub.dataset_unreachable"}[kind]
        raise UserError(code, key=key, source=source)


# ---- the token ----------------------------------------------------------------------------------

_token: str | None = None
TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{8,}")  # the shape of Hugging Face access tokens


def set_token(value: str | None) -> None:
    """Hold the token the form gave for this process ('' or None forgets it). Never stored."""
    global _token
    value = (value or "").strip()
    if any(ch.isspace() or not ch.isprintable() for ch in value) or len(value) > 512:
        raise UserError("hub.token_invalid")
    _token = value or None


def token() -> str | None:
    """The token to pass as `token=`: the form's, else None (huggingface_hub then uses HF_TOKEN
    or the machine's login)."""
    return _token


def token_kwargs() -> dict:
    """{"token": the form's token} for a loader, or {} (its own default) when there is none."""
    return {"token": _token} if _token else {}


def token_source() -> str:
    """Where the token in use comes from: 'form', 'env' (HF_TOKEN), 'login' (hf auth login) or 'none'."""
    if _token:
        return "form"
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        return "env"
    try:
        from huggingface_hub import constants

        if Path(constants.HF_TOKEN_PATH).is_file():
            return "login"
    except Exception:  # an unreadable home: no login
        pass
    return "none"


def redact(text: str) -> str:
    """`text` with the held token, HF_TOKEN's value and anything shaped like a token replaced."""
    for secret in (_token, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")):
        if secret:
            text = text.replace(secret, "***")
    return TOKEN_PATTERN.sub("hf_***", text)


def status_message(status: str | None = None) -> Msg:
    """One line for the page: the Hub's status and where the token comes from."""
    status = status or hub_status()
    return Msg("hub.status_line", status=Msg(STATUS_CODES[status]), token=Msg(TOKEN_CODES[token_source()]))


STATUS_CODES = {"online": "hub.status_online", "unreachable": "hub.status_unreachable",
                "offline": "hub.status_offline"}
TOKEN_CODES = {"form": "hub.token_form", "env": "hub.token_env", "login": "hub.token_login",
               "none": "hub.token_none"}
