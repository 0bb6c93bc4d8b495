"""Base models: check they exist, pick precision for the device, load with PEFT/bitsandbytes.

    check_model(cfg.model)                  # fast: config.json only; UserError on bad path / remote code
    plan = device_plan(cfg.train)           # {'device', 'bf16', 'fp16', 'gradient_checkpointing'}
    model, tokenizer = load_model(cfg, plan)
    peft_config = peft_config_for(cfg.method)   # None for full / freeze

Tokenizers without a pad token get one, and tokenizers without a chat template get a small
ChatML-like one, so every model can be trained on conversations and chatted with afterwards.
"""

from __future__ import annotations

import re

from studio.config import MethodSection, ModelSection, StudioConfig, TrainSection
from studio.errors import UserError
from studio.paths import resolve_model_path

# Used only when a tokenizer brings no template of its own (base models such as tiny Llamas).
FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}<|assistant|>\n{% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}\n"
    "{% else %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def check_model(section: ModelSection):
    """Load only the model's config: proves it exists and is loadable. Returns the config."""
    from transformers import AutoConfig

    path = resolve_model_path(section.path)
    hub_id = re.fullmatch(r"[\w.-]+(/[\w.-]+)?", path) and not path.startswith(".")
    if not _exists(path) and not hub_id:
        raise UserError(f"Model folder not found: {section.path}", key="model.path")
    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=section.trust_remote_code)
    except Exception as exc:
        text = str(exc)
        if "trust_remote_code" in text:
            raise UserError(
                f"'{section.path}' runs its own code: turn on 'Trust remote code' only if you "
                "trust its source.", key="model.trust_remote_code") from None
        if _exists(path):
            raise UserError(f"'{section.path}' is not a Hugging Face model folder (config.json is "
                            "missing or invalid).", key="model.path") from None
        raise UserError(f"Model '{section.path}' was not found locally or on the Hugging Face Hub "
                        "(check the name and your connection).", key="model.path") from None


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).expanduser().exists()


def device_plan(train: TrainSection, method: str = "lora") -> dict:
    """Choose device, precision and checkpointing so the defaults never fail where they run."""
    import torch

    cuda = torch.cuda.is_available()
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    precision = train.precision
    if precision == "auto":
        precision = "bf16" if bf16_ok else "fp16" if cuda else "fp32"
    if precision == "bf16" and not bf16_ok and cuda:
        raise UserError("This GPU has no bf16 support: choose fp16 or auto.", key="train.precision")
    if precision == "fp16" and not cuda:
        raise UserError("fp16 training needs a GPU: choose fp32 or auto on a CPU.", key="train.precision")
    checkpointing = {"on": True, "off": False}.get(train.gradient_checkpointing, cuda)
    return {"device": "cuda" if cuda else "cpu", "precision": precision,
            "bf16": precision == "bf16", "fp16": precision == "fp16",
            "gradient_checkpointing": checkpointing}


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return tokenizer


def load_model(cfg: StudioConfig, plan: dict):
    """The base model ready for the chosen method (quantized for qlora, frozen for freeze)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    path = resolve_model_path(cfg.model.path)
    tokenizer = load_tokenizer(path, cfg.model.trust_remote_code)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(plan["precision"], torch.float32)
    kwargs = {"dtype": dtype, "trust_remote_code": cfg.model.trust_remote_code}
    if cfg.method.method == "qlora":
        if cfg.method.quant_bits == 4:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=dtype)
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        if plan["device"] == "cuda":
            kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.method.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=plan["gradient_checkpointing"])
    elif cfg.method.method == "freeze":
        freeze_all_but_last_layers(model, cfg.method.freeze_layers)
    return model, tokenizer


def freeze_all_but_last_layers(model, n: int) -> int:
    """Train only the last n decoder layers; returns how many parameters stay trainable."""
    layer_ids = sorted({int(m.group(1)) for name, _ in model.named_parameters()
                        if (m := re.search(r"\.layers\.(\d+)\.", name))})
    if not layer_ids:
        raise UserError("freeze needs a model with numbered layers; use lora or full instead.",
                        key="method.method")
    keep = set(layer_ids[-n:])
    trainable = 0
    for name, param in model.named_parameters():
        m = re.search(r"\.layers\.(\d+)\.", name)
        param.requires_grad = bool(m and int(m.group(1)) in keep)
        trainable += param.numel() if param.requires_grad else 0
    return trainable


def peft_config_for(method: MethodSection):
    if method.method not in ("lora", "qlora"):
        return None
    from peft import LoraConfig

    target = method.lora_target.strip()
    targets = target if target == "all-linear" else [t.strip() for t in target.split(",") if t.strip()]
    return LoraConfig(r=method.lora_r, lora_alpha=method.lora_alpha, lora_dropout=method.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
