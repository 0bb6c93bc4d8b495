"""Adapter methods beyond LoRA (DoRA, rsLoRA, IA3, prefix and prompt tuning) on the demo model:
each trains through the job manager, saves an adapter, and that adapter answers through the code
the Chat tab uses and through the evaluator's generation path."""

import pytest

from helpers import fast_overrides
from studio import evaluate as ev
from studio import export
from studio.errors import UserError
from studio.arena import Arena
from studio.config import MethodSection
from studio.generation import GenerationSettings, attach_adapter, generate_batched, load_model_for_eval
from studio.infer import ChatSettings, ModelCache
from studio.models import peft_config_for
from studio.ui import chat_tab
from studio.workspace import Workspace

METHODS = ["dora", "rslora", "ia3", "prefix", "prompt"]
PROMPT = [{"role": "user", "content": "Give me three tips for staying healthy."}]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("peft") / "home")


@pytest.fixture(scope="module", params=METHODS)
def trained(request, home):
    """One tiny run per method (4 steps, 40 rows), as the Train tab starts it."""
    run = home.start(fast_overrides(method=request.param, max_steps=4, max_samples=40, eval_every=4,
                                    num_virtual_tokens=8, learning_rate=3e-3))
    home.jobs.wait(600)
    assert run.status()["state"] == "completed", run.status()["message"]
    return request.param, run


def test_adapter_saved_and_answers_in_chat_and_evaluate(home, trained):
    method, run = trained
    adapter = run.path / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and not (run.path / "model").exists()
    # Chat tab: the shared engine (LoRA kinds) or its own cached copy (other kinds)
    engine = Arena(home.store, max_bases=1)
    pieces = list(chat_tab.stream(home, engine, "demo", run.id, PROMPT, ChatSettings(max_new_tokens=12),
                                  cache=ModelCache(size=1)))
    assert pieces and str(pieces[-1]).strip(), pieces
    # Evaluate tab: the base model with the adapter attached, batched generation
    model, tokenizer = load_model_for_eval("demo")
    tuned = attach_adapter(model, adapter)
    answers = generate_batched(tuned, tokenizer, [PROMPT, PROMPT[:1]], GenerationSettings(max_new_tokens=12))
    assert len(answers) == 2 and all(a.strip() for a in answers), answers
    # ... and the Evaluate tab's whole job (generation + scores, base vs tuned)
    evaluator = ev.evaluator(home.jobs, home.home)
    request = evaluator.start([run.id], settings=GenerationSettings(batch_size=4, max_new_tokens=12), max_rows=4)
    evaluator.wait(request.id, 600)
    assert evaluator.status(request.id)["state"] == "completed", evaluator.status(request.id)
    [result] = evaluator.results(request.id)
    assert result["test"]["rows"] > 0 and result["test"]["tuned"]["eval_loss"] > 0, result


def test_merge_refuses_virtual_tokens_and_merges_the_rest(trained, tmp_path):
    method, run = trained
    if method in ("prefix", "prompt"):
        with pytest.raises(UserError) as refused:
            export.merge_and_save(run, tmp_path / "merged")
        assert refused.value.msg.code == "peftm.cannot_merge"
        assert (export.save_adapter(run, tmp_path / "alone") / "adapter_model.safetensors").is_file()
    else:
        merged = export.merge_and_save(run, tmp_path / "merged")
        assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()


def test_peft_config_for_each_method():
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig

    def config(method, **kw):
        return peft_config_for(MethodSection(method=method, **kw))

    assert config("full") is None and config("freeze") is None
    for method in ("lora", "qlora", "dora", "rslora"):
        cfg = config(method, lora_r=8)
        assert isinstance(cfg, LoraConfig) and cfg.r == 8 and cfg.target_modules == "all-linear"
        assert (cfg.use_dora, cfg.use_rslora) == (method == "dora", method == "rslora")
    ia3 = config("ia3", lora_target="q_proj, v_proj, down_proj")
    assert isinstance(ia3, IA3Config) and ia3.target_modules == {"q_proj", "v_proj", "down_proj"}
    assert ia3.feedforward_modules == {"down_proj"}
    assert isinstance(config("ia3"), IA3Config)  # all-linear: feed-forward layers found by name
    prefix, prompt = config("prefix", num_virtual_tokens=7), config("prompt", num_virtual_tokens=5)
    assert isinstance(prefix, PrefixTuningConfig) and prefix.num_virtual_tokens == 7
    assert isinstance(prompt, PromptTuningConfig) and prompt.num_virtual_tokens == 5


def test_prefix_tuning_never_gets_gradient_checkpointing():
    """Checkpointed layers drop prefix tuning's key/value cache: auto leaves it off, "on" is refused."""
    from studio.config import StudioConfig, TrainSection, validate
    from studio.models import DeviceCapability, device_plan

    gpu = DeviceCapability(cuda=True, gpu_name="H100", gpu_compute_capability=(9, 0))
    assert device_plan(TrainSection(), "prefix", device=gpu)["gradient_checkpointing"] is False
    assert device_plan(TrainSection(), "prompt", device=gpu)["gradient_checkpointing"] is True
    cfg = StudioConfig()
    cfg.method.method, cfg.train.gradient_checkpointing = "prefix", "on"
    assert validate(cfg)["train.gradient_checkpointing"].code == "peftm.prefix_no_checkpointing"
    cfg.method.method = "prompt"
    assert "train.gradient_checkpointing" not in validate(cfg)
