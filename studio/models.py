"""Base models: check they exist, pick precision for the device, load with PEFT/bitsandbytes.

    check_model(cfg.model)                  # fast: config.json only; UserError on bad path / remote code
    plan = device_plan(cfg.train)           # device, precision, bf16, fp16, gradient_checkpointing, threads,
                                            # reason (the precision), summary (the one line the Train tab shows)
    plan = device_plan(cfg.train, device=DeviceCapability(cpu_capability="AVX2"))  # another machine
    model, tokenizer = load_model(cfg, plan)
    peft_config = peft_config_for(cfg.method)   # None for full / freeze

Tokenizers without a pad token get one, and tokenizers without a chat template get a small
ChatML-like one, so every model can be trained on conversations and chatted with afterwards.
QLoRA 4-bit on a CPU leaves the linear layers that bitsandbytes' packed CPU kernel cannot take
(`layers_unfit_for_cpu_4bit`) unquantized, so the same run works on AVX2 and AVX-512 machines;
`model.studio_unquantized` names them.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from studio import hub
from studio.config import MethodSection, ModelSection, StudioConfig, TrainSection
from studio.errors import UserError
from studio.i18n import Msg
from studio.paths import expand_user, resolve_model_path
from studio.startup import wait_for_warm_up

# Used only when a tokenizer brings no template of its own (base models such as tiny Llamas).
FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}<|assistant|>\n{% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}\n"
    "{% else %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


HUB_PROBE_SECONDS = 3.0  # an unreachable Hub must fail well within 5 s (DNS included)


def check_model(section: ModelSection):
    """Load only the model's config: proves it exists and is loadable. Returns the config.

    Local folders are read directly; a Hub id is read from the Hub cache when it is there. Only
    then is the Hub asked, and only after a short reachability probe: without it, an offline
    machine waits on huggingface_hub's timeouts and retries for most of a minute.
    """
    wait_for_warm_up()
    from transformers import AutoConfig

    path = resolve_model_path(section.path)
    local = expand_user(path).exists()
    if not local and not (re.fullmatch(r"[\w.-]+(/[\w.-]+)?", path) and not path.startswith(".")):
        raise UserError("security.model_not_found", key="model.path", path=section.path)

    def load(**kwargs):
        return AutoConfig.from_pretrained(path, trust_remote_code=section.trust_remote_code,
                                          token=hub.token(), **kwargs)

    try:
        if local:
            return load()
        try:
            return load(local_files_only=True)  # already in the Hub cache: no network needed
        except OSError:
            pass
        status = hub.hub_status()  # cached: one short probe per HUB_STATUS_TTL, not per keystroke
        if status == "offline":
            raise UserError("security.model_offline", key="model.path", path=section.path)
        if status == "unreachable":
            raise UserError("security.model_hub_unreachable", key="model.path", path=section.path)
        return load()
    except UserError:
        raise
    except Exception as exc:
        if "trust_remote_code" in str(exc):
            raise UserError("security.model_remote_code", key="model.trust_remote_code",
                            path=section.path) from None
        if not local and _is_gated(exc):  # the license is not accepted, or no token was given
            raise UserError("hub.model_gated", key="model.path", source=section.path) from None
        code = "security.model_not_a_folder" if local else "security.model_not_on_hub"
        raise UserError(code, key="model.path", path=section.path) from None


def _is_gated(exc: BaseException) -> bool:
    """Whether loading failed because the repository is gated (transformers wraps huggingface_hub's
    GatedRepoError in an OSError; the wrapped one is its cause)."""
    from huggingface_hub.errors import GatedRepoError

    while exc is not None:
        if isinstance(exc, GatedRepoError) or "gated repo" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Whether the Hub endpoint answers at all within `timeout` seconds (any HTTP status counts).

    Runs in a daemon thread so that a hanging DNS lookup, which no socket timeout covers, cannot
    hold the caller longer than `timeout`. Uses huggingface_hub's own session (proxies, endpoint).
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    answered = threading.Event()

    def probe():
        try:
            get_session().head(constants.ENDPOINT, timeout=timeout)
            answered.set()
        except Exception:  # unreachable, refused, TLS or proxy failure: all mean "cannot reach"
            pass

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return answered.is_set()


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with native bf16 math


@dataclass(frozen=True)
class DeviceCapability:
    """What the training device can do: the facts `device_plan` decides from.

    `detect_device()` reads them from this machine; tests build one by hand to plan for a machine
    they do not run on (an AVX2-only EPYC, an AMX Xeon, an old or a new GPU).
    """

    cuda: bool = False
    gpu_name: str = ""
    gpu_compute_capability: tuple[int, int] | None = None  # (8, 0) = Ampere: bf16 in hardware
    cpu_capability: str = ""  # torch.backends.cpu.get_cpu_capability(): "AVX2", "AVX512", …
    cpu_flags: frozenset[str] = frozenset()  # the CPU_BF16_FLAGS this CPU has
    cpu_threads: int = 1  # CPUs this process may use (`usable_cpus`)
    gpu_memory: int = 0  # bytes of the first GPU

    @property
    def gpu_bf16(self) -> bool:
        return self.cuda and (self.gpu_compute_capability or (0, 0)) >= (8, 0)

    @property
    def cpu_bf16(self) -> bool:
        return any(flag in self.cpu_flags for flag in CPU_BF16_FLAGS)


def detect_device() -> DeviceCapability:
    """This machine's DeviceCapability (the first GPU when there is one)."""
    import torch

    cuda = torch.cuda.is_available()
    return DeviceCapability(
        cuda=cuda,
        gpu_name=torch.cuda.get_device_name(0) if cuda else "",
        gpu_compute_capability=tuple(torch.cuda.get_device_capability(0)) if cuda else None,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        cpu_flags=frozenset(cpu_flags() & set(CPU_BF16_FLAGS)),
        # Several training processes on one machine (torchrun) share its CPUs.
        cpu_threads=max(1, usable_cpus() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))),
        gpu_memory=torch.cuda.get_device_properties(0).total_memory if cuda else 0)


def usable_cpus() -> int:
    """CPUs this process may really use: its CPU affinity, capped by a cgroup CPU quota.

    torch sizes its thread pool from the host's cores, not from a container's quota; on a
    2-CPU container of a 64-core host it would run 32 threads that fight over 2 CPUs."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:  # cgroup v2: "max 100000" (no quota) or "<quota> <period>"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


def cpu_flags() -> set[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


GPU_MEMORY_SHARE = 0.8  # checkpointing turns on ("auto") when a run's estimate needs more of the GPU


def device_plan(train: TrainSection, method: str = "lora", device: DeviceCapability | None = None,
                memory_need: int | None = None, stage: str = "sft") -> dict:
    """Choose device, precision, checkpointing and threads: fast defaults that never fail where they run.

    Returns {'device', 'precision', 'bf16', 'fp16', 'gradient_checkpointing', 'threads', 'attention',
    'padding_free', 'lora_kernels', 'reason', 'summary'}; `reason` is a Msg saying why this
    precision, `summary` the whole choice in one line (the Train tab shows it). On a CPU,
    `attention` names the studio's attention (studio.cpu_speed: "short_eager" in bf16, which also
    runs plain attention on short batches, "packed" in fp32), `padding_free` lets SFT batches drop
    their padding (examples laid end to end in one row, attended one by one: the same maths on
    fewer tokens) and `lora_kernels` swaps in the cheaper LoRA dropout masks.

    Precision `auto`: bf16 on Ampere-or-newer GPUs, fp16 on older ones; on a CPU bf16 where the
    CPU computes it natively (AMX / AVX-512-BF16) and fp32 where bf16 would be emulated (measured
    on an AVX-512 Xeon without it: TRL's default bf16 autocast trained 2-3x slower than fp32; 20x
    on an AVX2 EPYC). QLoRA on a CPU stays fp32: bitsandbytes' CPU 4-bit
    kernels are the ones tested in fp32. Gradient checkpointing `auto` is on only on a GPU whose
    memory the run's estimate (`memory_need`, bytes without checkpointing; unknown = on) would fill
    past GPU_MEMORY_SHARE: it recomputes activations, about a third more work a step.
    """
    device = device or detect_device()
    precision = train.precision
    if device.cuda:
        if precision == "bf16" and not device.gpu_bf16:
            raise UserError("models.gpu_no_bf16", key="train.precision")
        if precision == "auto":
            precision = "bf16" if device.gpu_bf16 else "fp16"
            reason = Msg("models.plan_gpu_bf16" if device.gpu_bf16 else "models.plan_gpu_fp16",
                         gpu=device.gpu_name or "GPU")
        else:
            reason = Msg("models.plan_chosen", precision=precision)
    else:
        if precision == "fp16":
            raise UserError("models.fp16_needs_gpu", key="train.precision")
        cpu = device.cpu_capability or "CPU"
        if precision == "auto":
            native = device.cpu_bf16 and method != "qlora"
            precision = "bf16" if native else "fp32"
            reason = Msg("models.plan_cpu_native_bf16" if native else
                         "models.plan_cpu_qlora_fp32" if device.cpu_bf16 else "models.plan_cpu_no_bf16", cpu=cpu)
        elif precision == "bf16" and not device.cpu_bf16:
            reason = Msg("models.plan_cpu_bf16_emulated", cpu=cpu)
        else:
            reason = Msg("models.plan_chosen", precision=precision)
    # Prefix tuning feeds its virtual tokens as a key/value cache, which checkpointed layers drop
    # (a shape error at the first step): auto leaves it off there; "on" is refused by validate().
    needs = device.cuda and (memory_need is None or not device.gpu_memory
                             or memory_need > GPU_MEMORY_SHARE * device.gpu_memory)
    checkpointing = {"on": True, "off": False}.get(train.gradient_checkpointing, needs and method != "prefix")
    if train.gradient_checkpointing != "auto":
        why = Msg("models.ckpt_chosen")
    elif checkpointing:
        why = Msg("models.ckpt_needed" if memory_need else "models.ckpt_unknown")
    else:
        why = Msg("models.ckpt_prefix" if device.cuda and needs else "models.ckpt_fits")
    threads = device.cpu_threads if not device.cuda else None
    # CPUs: the studio's attention (studio.cpu_speed), which attends padding-free batches example
    # by example; in bf16 it also runs plain attention for short batches (the measured crossover).
    attention = None if device.cuda else "short_eager" if precision == "bf16" else "packed"
    # Not for DPO (its trainer pairs and pads rows itself), prompt learning (PEFT prepends virtual
    # tokens to each row, which a row of several examples would share) nor NEFTune (its noise
    # shrinks with the row's length).
    padding_free = (attention is not None and stage == "sft" and method not in ("prefix", "prompt")
                    and not train.neftune_alpha)
    # LoRA on a CPU: cheaper dropout masks, bf16 inputs kept bf16 (studio.cpu_speed); GPUs have their own.
    lora_kernels = not device.cuda
    summary = Msg("models.plan_summary", precision=reason,
                  checkpointing=Msg("models.ckpt_on" if checkpointing else "models.ckpt_off", why=why),
                  threads=Msg("models.plan_threads", n=threads) if threads else "",
                  attention=Msg("models.plan_attention", n=_eager_max_keys()) if attention == "short_eager" else "",
                  batches=Msg("models.plan_padding_free") if padding_free else "")
    return {"device": "cuda" if device.cuda else "cpu", "precision": precision,
            "bf16": precision == "bf16", "fp16": precision == "fp16",
            "gradient_checkpointing": checkpointing, "threads": threads, "attention": attention,
            "padding_free": padding_free, "lora_kernels": lora_kernels, "reason": reason,
            "summary": summary}


def _eager_max_keys() -> int:
    from studio.cpu_speed import EAGER_MAX_KEYS

    return EAGER_MAX_KEYS


def load_tokenizer(path: str, trust_remote_code: bool = False):
    wait_for_warm_up()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, token=hub.token())
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
    kwargs = {"dtype": dtype, "trust_remote_code": cfg.model.trust_remote_code, "token": hub.token()}
    unquantized: list[str] = []
    if cfg.method.method == "qlora":
        if cfg.method.quant_bits == 4:
            skip = None
            if plan["device"] == "cpu":
                unquantized, defaults = layers_unfit_for_cpu_4bit(path, cfg.model.trust_remote_code)
                # A skip list replaces transformers' default one (lm_head, tied embeddings): keep it.
                skip = sorted(set(unquantized) | set(defaults)) if unquantized else None
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=skip)
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        if plan["device"] == "cuda":
            kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.studio_unquantized = unquantized  # train.py logs which layers stayed unquantized
    if plan.get("attention") and model.config._attn_implementation == "sdpa":  # models that run SDPA only
        from studio.cpu_speed import register_cpu_attention

        model.set_attn_implementation(register_cpu_attention(plan["attention"]))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.method.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=plan["gradient_checkpointing"])
    elif cfg.method.method == "freeze":
        freeze_all_but_last_layers(model, cfg.method.freeze_layers)
    return model, tokenizer


CPU_4BIT_BLOCK_N = 32  # bitsandbytes packs 4-bit weights in blocks of 32 output features on CPU
CPU_4BIT_BLOCKSIZE = 64  # and regroups each row's scales per 64 input features (its default blocksize)


def layers_unfit_for_cpu_4bit(path: str, trust_remote_code: bool = False) -> tuple[list[str], list[str]]:
    """(linear layers bitsandbytes' CPU 4-bit kernel cannot take, transformers' default skip list).

    On a CPU with AVX-512 bf16, bitsandbytes 0.50 repacks every 4-bit weight for its fused kernel
    the first time a layer runs without gradients (evaluation, generation): it asserts that the
    output features divide by 32, and it regroups each row's quantization scales, which needs the
    input features to divide by the 64-value quantization block. Other CPUs never repack, but a
    run must work on every CPU, so the rule applies to all of them. Computed from the config on
    the meta device: no weights are read.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.quantizers.base import get_keys_to_not_convert

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, token=hub.token())
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    unfit = [name for name, module in skeleton.named_modules()
             if isinstance(module, torch.nn.Linear)
             and (module.out_features % CPU_4BIT_BLOCK_N or module.in_features % CPU_4BIT_BLOCKSIZE)]
    return unfit, list(get_keys_to_not_convert(skeleton))


def freeze_all_but_last_layers(model, n: int) -> int:
    """Train only the last n decoder layers; returns how many parameters stay trainable."""
    layer_ids = sorted({int(m.group(1)) for name, _ in model.named_parameters()
                        if (m := re.search(r"\.layers\.(\d+)\.", name))})
    if not layer_ids:
        raise UserError("models.freeze_needs_layers", key="method.method")
    keep = set(layer_ids[-n:])
    trainable = 0
    for name, param in model.named_parameters():
        m = re.search(r"\.layers\.(\d+)\.", name)
        param.requires_grad = bool(m and int(m.group(1)) in keep)
        trainable += param.numel() if param.requires_grad else 0
    return trainable


# Feed-forward output layers of common architectures (Llama/Mistral/Qwen, OPT/Phi, BLOOM, Mixtral
# experts). IA3 scales their *input* rather than their output, as the IA3 paper does.
IA3_FEEDFORWARD = ("down_proj", "fc2", "dense_4h_to_h", "w2")
PROMPT_LEARNING = ("prefix", "prompt")  # methods that add virtual tokens instead of changing layers


def lora_targets(target: str):
    """'all-linear' stays a string (PEFT's shorthand); 'q_proj, v_proj' becomes a list."""
    target = target.strip()
    return target if target == "all-linear" else [t.strip() for t in target.split(",") if t.strip()]


def peft_config_for(method: MethodSection):
    """The PEFT config of an adapter method (None for full / freeze). lora/qlora/dora/rslora are
    LoRA variants (DoRA: magnitude-direction split; rsLoRA: alpha/sqrt(r) scaling); ia3 learns
    scaling vectors on `lora_target`; prefix/prompt learn `num_virtual_tokens` virtual tokens."""
    name = method.method
    if name in ("lora", "qlora", "dora", "rslora"):
        from peft import LoraConfig

        return LoraConfig(r=method.lora_r, lora_alpha=method.lora_alpha, lora_dropout=method.lora_dropout,
                          target_modules=lora_targets(method.lora_target), task_type="CAUSAL_LM",
                          use_dora=name == "dora", use_rslora=name == "rslora")
    if name == "ia3":
        from peft import IA3Config

        targets = lora_targets(method.lora_target)
        if isinstance(targets, str):  # all-linear: feed-forward layers are found by name (a regex)
            feedforward = r".*\.(" + "|".join(IA3_FEEDFORWARD) + r")$"
        else:
            feedforward = [t for t in targets if t.rsplit(".", 1)[-1] in IA3_FEEDFORWARD]
        return IA3Config(target_modules=targets, feedforward_modules=feedforward, task_type="CAUSAL_LM")
    if name == "prefix":
        from peft import PrefixTuningConfig

        return PrefixTuningConfig(num_virtual_tokens=method.num_virtual_tokens, task_type="CAUSAL_LM")
    if name == "prompt":
        from peft import PromptTuningConfig, PromptTuningInit

        return PromptTuningConfig(num_virtual_tokens=method.num_virtual_tokens, task_type="CAUSAL_LM",
                                  prompt_tuning_init=PromptTuningInit.RANDOM)
    return None
