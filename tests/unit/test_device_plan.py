"""The device plan for machines we do not run on: the capability is fed in, nothing is detected."""

import pytest

from studio.config import TrainSection
from studio.errors import UserError
from studio.i18n import Msg, render
from studio.models import DeviceCapability, cpu_flags, detect_device, device_plan, usable_cpus

AVX2_EPYC = DeviceCapability(cpu_capability="AVX2")
AVX512_NO_BF16 = DeviceCapability(cpu_capability="AVX512")
AMX_XEON = DeviceCapability(cpu_capability="AVX512", cpu_flags=frozenset({"avx512_bf16", "amx_bf16"}))
A100 = DeviceCapability(cuda=True, gpu_name="NVIDIA A100", gpu_compute_capability=(8, 0), gpu_memory=80 * 2**30)
T4 = DeviceCapability(cuda=True, gpu_name="Tesla T4", gpu_compute_capability=(7, 5))


def plan(device, **train):
    return device_plan(TrainSection(**train), "lora", device=device)


@pytest.mark.parametrize("cpu", [AVX2_EPYC, AVX512_NO_BF16])
def test_a_cpu_that_emulates_bf16_trains_in_fp32_without_checkpointing(cpu):
    p = plan(cpu)
    assert (p["device"], p["precision"], p["bf16"], p["fp16"]) == ("cpu", "fp32", False, False)
    assert p["gradient_checkpointing"] is False


def test_a_cpu_with_native_bf16_trains_in_bf16_except_qlora():
    p = plan(AMX_XEON)
    assert (p["device"], p["precision"], p["bf16"], p["fp16"]) == ("cpu", "bf16", True, False)
    assert p["gradient_checkpointing"] is False
    q = device_plan(TrainSection(), "qlora", device=AMX_XEON)
    assert q["precision"] == "fp32" and q["reason"].code == "models.plan_cpu_qlora_fp32"


def test_the_plan_says_why_on_a_cpu_with_and_without_native_bf16():
    with_bf16, without = plan(AMX_XEON)["reason"], plan(AVX2_EPYC)["reason"]
    assert with_bf16.code == "models.plan_cpu_native_bf16"
    assert without.code == "models.plan_cpu_no_bf16"
    for lang in ("en", "zh"):
        assert "AVX2" in render(without, lang) and "fp32" in render(without, lang)
        assert "bf16" in render(with_bf16, lang)


def test_the_one_line_summary_names_precision_checkpointing_and_threads():
    p = device_plan(TrainSection(), "lora", device=DeviceCapability(cpu_capability="AVX2", cpu_threads=3))
    assert p["threads"] == 3
    for lang in ("en", "zh"):
        line = render(p["summary"], lang)
        assert "fp32" in line and "3" in line and "\n" not in line
    assert "Gradient checkpointing off" in render(p["summary"], "en")
    assert plan(A100)["threads"] is None  # GPU runs leave torch's CPU threads alone


def test_gpu_checkpointing_turns_on_only_when_the_estimate_needs_it():
    def ckpt(need):
        return device_plan(TrainSection(), "lora", device=A100, memory_need=need)["gradient_checkpointing"]

    assert ckpt(None) is True  # unknown: the safe side
    assert ckpt(10 * 2**30) is False  # fits easily: no recomputation
    assert ckpt(70 * 2**30) is True  # above 80 % of 80 GB
    assert device_plan(TrainSection(), "prefix", device=A100, memory_need=70 * 2**30)["gradient_checkpointing"] is False


def test_usable_cpus_is_within_what_the_os_allows():
    import os

    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))


def test_bf16_chosen_on_a_cpu_without_native_bf16_is_allowed_but_warned():
    p = plan(AVX2_EPYC, precision="bf16")
    assert p["bf16"] and p["reason"].code == "models.plan_cpu_bf16_emulated"
    assert plan(AMX_XEON, precision="bf16")["reason"].code == "models.plan_chosen"


def test_fp16_on_a_cpu_is_refused_at_the_precision_field():
    with pytest.raises(UserError) as err:
        plan(AVX512_NO_BF16, precision="fp16")
    assert err.value.key == "train.precision" and err.value.msg.code == "models.fp16_needs_gpu"


def test_an_ampere_gpu_gets_bf16_and_an_older_gpu_fp16():
    new, old = plan(A100), plan(T4)
    assert (new["device"], new["precision"], new["bf16"], new["fp16"]) == ("cuda", "bf16", True, False)
    assert (old["device"], old["precision"], old["bf16"], old["fp16"]) == ("cuda", "fp16", False, True)
    assert "A100" in render(new["reason"], "en") and "T4" in render(old["reason"], "zh")
    assert new["gradient_checkpointing"] and old["gradient_checkpointing"]  # memory need unknown


def test_bf16_on_an_old_gpu_is_refused():
    with pytest.raises(UserError) as err:
        plan(T4, precision="bf16")
    assert err.value.key == "train.precision" and err.value.msg.code == "models.gpu_no_bf16"


def test_checkpointing_follows_the_setting_when_one_is_given():
    assert plan(AVX2_EPYC, gradient_checkpointing="on")["gradient_checkpointing"] is True
    assert plan(A100, gradient_checkpointing="off")["gradient_checkpointing"] is False


def test_this_machine_is_detected_consistently():
    import torch

    device = detect_device()
    assert device.cuda == torch.cuda.is_available()
    assert device.cpu_capability == torch.backends.cpu.get_cpu_capability()
    assert device.cpu_flags <= cpu_flags()  # only flags this CPU really reports
    assert device_plan(TrainSection())["device"] == ("cuda" if device.cuda else "cpu")


def test_the_studio_attention_padding_free_batches_and_lora_kernels_are_for_cpus_only():
    """bf16 on a CPU: short batches run plain attention (the fused kernel is slower there); fp32
    CPUs keep the fused kernel. Every CPU run gets the studio's attention, so SFT batches go
    padding-free, and the LoRA dropout kernels; GPUs none of them."""
    bf16, fp32, gpu = plan(AMX_XEON), plan(AVX2_EPYC), plan(A100)
    assert (bf16["attention"], fp32["attention"], gpu["attention"]) == ("short_eager", "packed", None)
    assert bf16["padding_free"] and fp32["padding_free"] and not gpu["padding_free"]
    assert bf16["lora_kernels"] and fp32["lora_kernels"] and not gpu["lora_kernels"]
    assert device_plan(TrainSection(), "qlora", device=AMX_XEON)["attention"] == "packed"  # fp32 there
    for lang in ("en", "zh"):
        line = render(bf16["summary"], lang)
        assert "160" in line and "\n" not in line
        assert "160" not in render(fp32["summary"], lang)
        padding_free = render(Msg("models.plan_padding_free"), lang).strip()
        assert padding_free in line and padding_free in render(fp32["summary"], lang)
        assert padding_free not in render(gpu["summary"], lang)


@pytest.mark.parametrize("method, stage", [("prefix", "sft"), ("prompt", "sft"), ("lora", "dpo")])
def test_no_padding_free_batches_where_rows_must_stay_apart(method, stage):
    """Prompt learning prepends virtual tokens to each row, DPO pairs and pads its own rows,
    NEFTune scales its noise by the row's length."""
    p = device_plan(TrainSection(), method, device=AVX2_EPYC, stage=stage)
    assert p["attention"] == "packed" and not p["padding_free"]
    assert not device_plan(TrainSection(neftune_alpha=5), device=AVX2_EPYC)["padding_free"]  # noise ~ row length
    assert render(Msg("models.plan_padding_free"), "en").strip() not in render(p["summary"], "en")
