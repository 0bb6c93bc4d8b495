"""QLoRA on any model, on every CPU: layers the packed 4-bit CPU kernel cannot take stay unquantized.

bitsandbytes 0.50 repacks 4-bit weights for its fused CPU kernel on CPUs with AVX-512 bf16 (at
the first forward pass without gradients) and asserts `N % 32 == 0` for each layer's output
features. This machine may not have that CPU, so the tests check the shapes the repack needs
directly, by running bitsandbytes' own repack function on every quantized layer, and train for
real on whatever CPU runs them.
"""

import copy
import json

import pytest

from helpers import fast_overrides
from studio.config import StudioConfig, apply_overrides
from studio.models import device_plan, layers_unfit_for_cpu_4bit, load_model
from studio.paths import DEMO_MODEL
from studio.workspace import Workspace


def train(home, overrides: list[str], timeout: float = 600):
    ws = Workspace(home)
    run = ws.jobs.start(apply_overrides(StudioConfig(), overrides))  # the CLI's door: any local path
    ws.jobs.wait(timeout)
    assert not ws.jobs.busy(), "training did not finish in time"
    return run


def repack_failures(model) -> list[str]:
    """Quantized layers that bitsandbytes' AVX-512-bf16 repack would reject (run on copies)."""
    import bitsandbytes as bnb
    from bitsandbytes.functional import _convert_weight_packed_for_cpu

    failures = []
    for name, module in model.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            try:
                _convert_weight_packed_for_cpu(module.weight.data.clone(), copy.deepcopy(module.weight.quant_state))
            except (AssertionError, RuntimeError):  # "N must be divisible by block_n", a bad reshape
                failures.append(name)
    return failures


def qlora_config(model_path, bits: int = 4) -> StudioConfig:
    return apply_overrides(StudioConfig(), [f"model={model_path}", "method=qlora", f"quant_bits={bits}"])


@pytest.fixture
def awkward_llama(tmp_path):
    """A small random Llama whose MLP width (100) is not a multiple of 32, with the demo tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(DEMO_MODEL)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=100,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=256, tie_word_embeddings=True, bos_token_id=None,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    folder = tmp_path / "awkward-llama"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_the_demo_model_suits_every_kernel():
    config = json.loads((DEMO_MODEL / "config.json").read_text())
    for field in ("vocab_size", "hidden_size", "intermediate_size"):
        assert config[field] % 64 == 0, (field, config[field])
    assert layers_unfit_for_cpu_4bit(str(DEMO_MODEL))[0] == []


def test_unfit_layers_are_found_from_the_config(awkward_llama):
    unfit, defaults = layers_unfit_for_cpu_4bit(str(awkward_llama))
    # gate/up: 100 outputs (not a multiple of 32); down: 100 inputs (not a multiple of 64)
    assert sorted(unfit) == sorted(f"model.layers.{i}.mlp.{p}" for i in range(2)
                                   for p in ("gate_proj", "up_proj", "down_proj"))
    assert "lm_head" in defaults  # the default skip list is kept alongside ours


def test_4bit_load_leaves_only_packable_layers_quantized(awkward_llama):
    import bitsandbytes as bnb
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    cfg = qlora_config(awkward_llama)
    model, _ = load_model(cfg, device_plan(cfg.train, "qlora"))
    quantized = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized and "model.layers.0.self_attn.q_proj" in quantized
    assert not any(".mlp." in n for n in quantized)
    assert sorted(model.studio_unquantized) == sorted(layers_unfit_for_cpu_4bit(str(awkward_llama))[0])
    assert repack_failures(model) == []
    # Without the skip list the same model has layers the AVX-512 bf16 kernel rejects.
    plain = AutoModelForCausalLM.from_pretrained(
        awkward_llama, quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4"))
    assert "model.layers.0.mlp.gate_proj" in repack_failures(plain)


def test_4bit_demo_model_quantizes_every_layer_and_packs(tmp_path):
    import bitsandbytes as bnb

    cfg = qlora_config("demo")
    model, _ = load_model(cfg, device_plan(cfg.train, "qlora"))
    assert model.studio_unquantized == []
    layers = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 7 * model.config.num_hidden_layers  # q, k, v, o, gate, up, down
    assert repack_failures(model) == []


def test_qlora_4bit_trains_a_model_with_awkward_layers(home, awkward_llama):
    run = train(home, [f"model={awkward_llama}", "method=qlora", "quant_bits=4", "name=awkward",
                       *fast_overrides(max_steps=3, eval_every=3)])
    status = run.status()
    assert status["state"] == "completed", status["message"]
    assert (run.path / "adapter" / "adapter_model.safetensors").is_file()
    logs = (run.path / "logs.txt").read_text()
    assert "quantized 4-bit" in logs and "left unquantized" in logs and "mlp.gate_proj" in logs


def test_qlora_4bit_trains_the_shared_fixture_model(home, shared):
    model = shared / "models" / "aidreams-260k"
    assert layers_unfit_for_cpu_4bit(str(model))[0]  # intermediate_size 172: not a multiple of 32
    run = train(home, [f"model={model}", "method=qlora", "quant_bits=4", "name=aidreams",
                       *fast_overrides(max_steps=3, eval_every=3)])
    status = run.status()
    assert status["state"] == "completed", status["message"]
    assert "left unquantized" in (run.path / "logs.txt").read_text()


@pytest.mark.parametrize("bits", [4, 8])
def test_qlora_trains_the_demo_model_and_the_adapter_chats(home, bits):
    from studio.infer import generate_answers, load_for_inference

    run = train(home, ["method=qlora", f"quant_bits={bits}", *fast_overrides(max_steps=3, eval_every=3)])
    status = run.status()
    assert status["state"] == "completed", status["message"]
    logs = (run.path / "logs.txt").read_text()
    assert f"quantized {bits}-bit" in logs and "left unquantized" not in logs
    model, tokenizer = load_for_inference(run.output_dir())
    (answer,) = generate_answers(model, tokenizer, [[{"role": "user", "content": "What is 2 plus 3?"}]],
                                 max_new_tokens=8)
    assert isinstance(answer, str) and answer
