"""The estimate shown before Start: trainable parameters, peak memory, steps and a rough time.

    info = estimate(cfg)                 # {"total", "trainable", "share", "memory_cpu", "memory_gpu",
                                         #  "steps", "seconds", "summary": Msg, ...}
    info = estimate(cfg, rows=240)       # the Train tab passes the rows its data check already counted
    print(info["summary"].render("zh"))

Parameters are PEFT's own count on a skeleton of the model built on the meta device from its
config (no weights are read; a Hub id needs its config in the local cache). Memory is physics:
weights + gradients + AdamW states + activations + logits, plus on a CPU the process itself
(Python, torch, transformers, TRL, datasets and a Trainer), measured once (CPU_PROCESS_BYTES).
The time is rough: tokens / a throughput per device kind, plus a per-step overhead.
"""

from __future__ import annotations

import threading
import warnings

from studio.config import StudioConfig, total_steps, validate
from studio.i18n import Msg
from studio.paths import resolve_model_path
from studio.startup import wait_for_warm_up

MB = 1024 ** 2
# A training process on a CPU before the model counts: Python + torch + transformers + TRL +
# datasets + peft imported (measured: 482 MB peak RSS for the imports alone) plus what a Trainer
# run adds around a model of negligible size (tokenized dataset in Arrow, accelerate, the
# dataloader): 5-step runs of the 0.3 M-parameter fixture model peak at 555-571 MB (LoRA, full)
# on this machine (Linux x86-64, torch CPU wheels), of which the physics below is ~25 MB.
CPU_PROCESS_BYTES = 545 * MB
# A CUDA context plus the caching allocator's slack, on top of what tensors need.
GPU_CONTEXT_BYTES = 500 * MB
# Bytes an activation kept for backward takes per token, per layer, in units of hidden size
# (Llama-like block: two norms, q/k/v/o inputs and outputs, the residual stream) and of
# intermediate size (gate, up, activation, product: four tensors). Attention scores are added
# separately (heads x length per token, probabilities and their dropout/softmax copy).
ACT_PER_HIDDEN = 12
ACT_PER_INTERMEDIATE = 4
# The logits (batch x length x vocab, fp32) live several times at the peak: the logits, their
# log-softmax, its gradient, and TRL's entropy / token accuracy on the same tensor.
LOGIT_COPIES = 4
# Throughput: effective FLOP/s of a training step (6 x params FLOPs a token with full backward) and
# a fixed overhead per optimizer step (Python, data collation, optimizer) that dominates tiny models.
# CPU: fitted to the demo recipe (1.5 M params, 424 steps of 8 rows, ~50 s on 2 Xeon cores).
# GPU: an H100-class card at ~30 % MFU.
DEVICE_SPEED = {"cpu": {"flops": 5e10, "step_s": 0.07}, "gpu": {"flops": 1.5e14, "step_s": 0.05}}

# A DPO step does far more than its FLOPs say on a small model: two sequences per pair, padded
# and concatenated, the reference pass with the adapter switched off, and the reward bookkeeping.
# The demo DPO recipe ran 0.3-1.6 s a step on 2 busy cores against ~0.12 s for an SFT step.
DPO_STEP_FACTOR = 5

# PEFT asks the skeleton a transformers 5 deprecated question (not the user's business; the
# filter is narrow because catch_warnings is not thread-safe and training logs warnings meanwhile).
warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)

_skeletons: dict[tuple, dict] = {}
_lock = threading.Lock()


def _param_key(cfg: StudioConfig) -> tuple:
    m = cfg.method
    return (cfg.model.path, cfg.model.trust_remote_code, m.method, m.lora_r, m.lora_target,
            m.freeze_layers, m.num_virtual_tokens)


def count_parameters(cfg: StudioConfig) -> dict:
    """{"total", "trainable", "hidden", "layers", "intermediate", "heads", "vocab"} for the model and
    method, from a meta-device skeleton (cached per model and method settings). "trainable" is None
    for a method this module cannot count. Raises OSError/ValueError when the config is unreadable."""
    key = _param_key(cfg)
    with _lock:
        if key not in _skeletons:
            if len(_skeletons) > 16:
                _skeletons.clear()
            _skeletons[key] = _count(cfg)
        return dict(_skeletons[key])


def _count(cfg: StudioConfig) -> dict:
    wait_for_warm_up()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from studio.models import freeze_all_but_last_layers, peft_config_for

    path = resolve_model_path(cfg.model.path)
    # local_files_only: a Hub id is read from the cache or not at all (never wait on the network).
    config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code,
                                        local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=cfg.model.trust_remote_code)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    facts = {"hidden": getattr(text, "hidden_size", 0), "layers": getattr(text, "num_hidden_layers", 0),
             "intermediate": getattr(text, "intermediate_size", 0) or 4 * getattr(text, "hidden_size", 0),
             "heads": getattr(text, "num_attention_heads", 0), "vocab": getattr(text, "vocab_size", 0)}
    total = sum(p.numel() for p in model.parameters())
    method = cfg.method.method
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)
                 and m.weight.numel() < total)  # quantizable by bitsandbytes (lm_head when untied too)
    trainable = None
    if method == "full":
        trainable = total
    elif method == "freeze":
        trainable = freeze_all_but_last_layers(model, cfg.method.freeze_layers)
    else:
        try:
            peft_config = peft_config_for(cfg.method)
        except Exception:  # a method peft_config_for does not know (yet): no count, no crash
            peft_config = None
        if peft_config is not None:
            from peft import get_peft_model

            peft_model = get_peft_model(model, peft_config)
            trainable, total = peft_model.get_nb_trainable_parameters()
    return {"total": total, "trainable": trainable, "linear": linear, **facts}


def device_plan_for(cfg: StudioConfig) -> dict:
    """models.device_plan for this run, told on a GPU how much memory the run needs without
    gradient checkpointing (so `auto` turns checkpointing on only when it must)."""
    from studio.models import detect_device, device_plan

    device = detect_device()
    need = None
    if device.cuda:
        try:
            need = memory_bytes(count_parameters(cfg), cfg, "gpu", cfg.train.max_length, checkpointing=False)
        except Exception:  # a model whose config cannot be read: checkpointing stays on, the safe side
            need = None
    return device_plan(cfg.train, cfg.method.method, device, memory_need=need, stage=cfg.method.stage)


def train_rows(cfg: StudioConfig, report: dict) -> int:
    """Training rows after the validation and test split, from a data check report."""
    kept = report.get("kept", report.get("usable", 0))
    return report.get("train_rows", kept - round(kept * cfg.data.test_size) - round(kept * cfg.data.val_size))


def memory_bytes(counts: dict, cfg: StudioConfig, device: str, length: int,
                 checkpointing: bool | None = None) -> int:
    """Estimated peak memory of training on `device` ("cpu" or "gpu"), in bytes."""
    method, stage = cfg.method.method, cfg.method.stage
    total = counts["total"]
    trainable = counts["trainable"] if counts["trainable"] is not None else total
    gpu = device == "gpu"
    if checkpointing is None:  # "auto": assumed on for GPUs (device_plan: on when the run needs it), off on CPUs
        checkpointing = {"on": True, "off": False}.get(cfg.train.gradient_checkpointing, gpu)
    weight = 2 if gpu and cfg.train.precision != "fp32" else 4
    weights = total * weight
    if method == "qlora":  # linear layers packed in 4 (or 8) bits, plus scales
        per = 0.55 if cfg.method.quant_bits == 4 else 1.05
        weights -= counts["linear"] * (weight - per)
    # gradients (fp32) and AdamW's two fp32 moments; adapters keep an fp32 copy on a GPU too
    optimizer = trainable * (4 + 8 + (4 if gpu and trainable < total else 0))
    if stage == "dpo" and method in ("full", "freeze"):
        weights *= 2  # a frozen reference copy; adapters use the base with the adapter off
    rows = cfg.train.batch_size * (2 if stage == "dpo" else 1)  # chosen + rejected in one batch
    if method == "prefix" or method == "prompt":
        length += cfg.method.num_virtual_tokens
    act_bytes = 2 if weight == 2 else 4
    hidden, inter, heads = counts["hidden"], counts["intermediate"], counts["heads"]
    per_layer = rows * length * (ACT_PER_HIDDEN * hidden + ACT_PER_INTERMEDIATE * inter
                                 + 2 * heads * length) * act_bytes
    layers = counts["layers"]
    activations = (rows * length * hidden * act_bytes * layers + per_layer) if checkpointing \
        else per_layer * layers
    logits = rows * length * counts["vocab"] * 4 * LOGIT_COPIES
    base = GPU_CONTEXT_BYTES if gpu else CPU_PROCESS_BYTES
    return int(base + weights + optimizer + activations + logits)


def rough_seconds(counts: dict, cfg: StudioConfig, device: str, steps: int, length: int) -> float:
    """A rough training time: FLOPs of the tokens at a device's effective speed, plus step overhead."""
    speed = DEVICE_SPEED[device]
    tokens = steps * cfg.train.batch_size * cfg.train.grad_accum * length * (2 if cfg.method.stage == "dpo" else 1)
    trainable = counts["trainable"] if counts["trainable"] is not None else counts["total"]
    # 2 FLOPs/param forward, 2 backward through activations, 2 more for weight gradients if trained
    flops_per_token = counts["total"] * 4 + trainable * 2
    if cfg.method.stage == "dpo" and cfg.method.method not in ("full", "freeze"):
        flops_per_token += counts["total"] * 2  # the reference forward pass
    overhead = speed["step_s"] * (DPO_STEP_FACTOR if cfg.method.stage == "dpo" else 1)
    return tokens * flops_per_token / speed["flops"] + steps * overhead * cfg.train.grad_accum


def estimate(cfg: StudioConfig, device: str | None = None, rows: int | None = None,
             report: dict | None = None) -> dict:
    """Everything the Train tab says before Start. `device` ("cpu"/"gpu") picks which memory
    figure "memory" is (default: this machine's); `rows` (training rows) or `report` (a data
    check report) spare a second data check. Never raises for a model it cannot read: the
    summary then says so ("ok": False)."""
    # A setting out of range (LoRA rank 0) would fail below as if the model could not be read:
    # say which setting instead (the form flags the same sentence at Start).
    if problems := validate(cfg):
        return {"ok": False, "summary": Msg("estimate.bad_setting", problem=next(iter(problems.values())))}
    try:
        counts = count_parameters(cfg)
    except Exception:
        return {"ok": False, "summary": Msg("estimate.no_config", model=cfg.model.path)}
    if report is None and rows is None:
        from studio.data import check_training_data

        report = check_training_data(cfg)
    if rows is None:
        rows = train_rows(cfg, report)
    longest = (report or {}).get("longest") or cfg.train.max_length
    length = min(cfg.train.max_length, longest)  # batches pad to their longest row
    steps = total_steps(max(rows, 1), cfg)
    if device is None:
        import torch

        device = "gpu" if torch.cuda.is_available() else "cpu"
    cpu, gpu = memory_bytes(counts, cfg, "cpu", length), memory_bytes(counts, cfg, "gpu", length)
    seconds = rough_seconds(counts, cfg, device, steps, length)
    trainable = counts["trainable"]
    share = trainable / counts["total"] if trainable is not None and counts["total"] else None
    info = {"ok": True, "total": counts["total"], "trainable": trainable, "share": share,
            "memory_cpu": cpu, "memory_gpu": gpu, "memory": gpu if device == "gpu" else cpu,
            "steps": steps, "rows": rows, "length": length, "seconds": seconds, "device": device}
    info["summary"] = summary(info)
    return info


def human_count(n: int) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return str(n)


def human_bytes(n: float) -> str:
    return f"{n / 1024 ** 3:.1f} GB" if n >= 1024 ** 3 else f"{n / MB:.0f} MB"


def human_time(seconds: float) -> Msg:
    if seconds < 90:
        return Msg("estimate.time_s", n=max(1, round(seconds)))
    if seconds < 90 * 60:
        return Msg("estimate.time_min", n=round(seconds / 60))
    return Msg("estimate.time_h", n=f"{seconds / 3600:.1f}")


def summary(info: dict) -> Msg:
    """One line: parameters · memory on CPU and GPU · steps · rough time."""
    memory = dict(cpu=human_bytes(info["memory_cpu"]), gpu=human_bytes(info["memory_gpu"]),
                  steps=info["steps"], time=human_time(info["seconds"]))
    if info["trainable"] is None:
        return Msg("estimate.summary_total", total=human_count(info["total"]), **memory)
    share = info["share"] * 100
    return Msg("estimate.summary", trainable=human_count(info["trainable"]),
               share=f"{share:.1f}" if share >= 0.1 else f"{share:.2g}", **memory)
