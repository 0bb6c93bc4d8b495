"""Adapters on one base (the A/B arena's models): two LoRA runs of the demo model answer
differently from one loaded base, a weighted combination loads, and bad adapters are refused."""

import json
import shutil

import pytest

from helpers import fast_overrides
from studio.arena import BASE, AdapterPool, Arena, mix_id
from studio.config import StudioConfig, apply_overrides
from studio.errors import UserError
from studio.infer import ChatSettings, generate_answers, load_for_inference
from studio.workspace import Workspace

QUESTION = [{"role": "user", "content": "What is the opposite of hot?"}]
GREEDY = ChatSettings(max_new_tokens=24)


def train_two(home):
    """Two tiny LoRA runs with different data, seeds and ranks (a few steps each)."""
    ws = Workspace(home)
    runs = []
    for data, seed, rank in (("demo-en", 1, 8), ("demo-zh", 2, 4)):
        run = ws.jobs.start(apply_overrides(StudioConfig(), fast_overrides(
            max_steps=4, eval_every=4, data=data, seed=seed, lora_r=rank, learning_rate=5e-3)))
        ws.jobs.wait(600)
        assert run.status()["state"] == "completed", run.status()["message"]
        runs.append(run)
    return ws, runs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_two(tmp_path_factory.mktemp("adapters") / "home")


def test_two_adapters_share_one_base_and_answer_differently(trained):
    ws, (run_a, run_b) = trained
    pool = AdapterPool("demo")
    base_weights = pool.base_weights()
    a, b = pool.add(run_a.output_dir()), pool.add(run_b.output_dir())
    assert pool.add(run_a.output_dir()) == a  # the same folder is attached once
    answers = {}
    for name in (a, b, BASE):
        answers[name] = pool.answer(name, QUESTION, GREEDY)
        assert pool.base_weights() is base_weights  # one base object, whichever adapter is on
    assert answers[a] != answers[b]
    # Each adapter answers exactly as it does loaded alone (greedy).
    for name, run in ((a, run_a), (b, run_b)):
        model, tokenizer = load_for_inference(run.output_dir())
        (alone,) = generate_answers(model, tokenizer, [QUESTION], max_new_tokens=24)
        assert answers[name].strip() == alone
    model, tokenizer = load_for_inference("demo")
    assert answers[BASE].strip() == generate_answers(model, tokenizer, [QUESTION], max_new_tokens=24)[0]
    # Both adapters' matrices hang on the same base layers: one copy of the base weights.
    layer = pool.peft.base_model.model.model.layers[0].self_attn.q_proj
    assert {a, b} <= set(layer.lora_A.keys())
    assert pool.peft.base_model.model is pool.model
    assert len({p.data_ptr() for n, p in pool.peft.named_parameters() if "lora_" not in n}) == \
        len({p.data_ptr() for p in pool.model.parameters() if p.data_ptr()}) - \
        len({p.data_ptr() for n, p in pool.model.named_parameters() if "lora_" in n})
    # Batched answers through the pool agree with the streamed ones.
    assert pool.generate(a, [QUESTION], max_new_tokens=24)[0] == answers[a].strip()


def test_weighted_combination_loads_and_generates(trained):
    ws, (run_a, run_b) = trained
    arena = Arena(ws.store)
    for combination in ("cat", "svd"):  # different ranks (8 and 4): linear cannot, these can
        model_id = mix_id([(f"run:{run_a.id}", 0.7), (f"run:{run_b.id}", 0.3)], combination)
        text = arena.answer(model_id, QUESTION, GREEDY)
        assert isinstance(text, str) and text.strip()
    pool, name = arena.resolve(mix_id([(f"run:{run_a.id}", 0.7), (f"run:{run_b.id}", 0.3)]))
    assert len(arena.pools) == 1 and name in pool.adapters  # the runs and the mix: one base
    # weight 1/0 on "cat" is exactly adapter A
    only_a = arena.answer(mix_id([(f"run:{run_a.id}", 1.0), (f"run:{run_b.id}", 0.0)]), QUESTION, GREEDY)
    assert only_a == arena.answer(f"run:{run_a.id}", QUESTION, GREEDY)
    with pytest.raises(UserError, match="same rank"):
        arena.resolve(mix_id([(f"run:{run_a.id}", 0.5), (f"run:{run_b.id}", 0.5)], "linear"))


def test_model_ids_and_bad_runs(trained, tmp_path):
    ws, (run_a, _) = trained
    arena = Arena(ws.store)
    with pytest.raises(UserError, match="no run or model folder"):
        arena.resolve("run:20990101-000000-nothing-here")
    with pytest.raises(UserError, match="Unknown model"):
        arena.resolve(str(run_a.output_dir()))  # a folder from the page: refused without allow_paths
    failed = ws.store.create(StudioConfig())
    failed.update_status(state="failed", message="boom")
    with pytest.raises(UserError, match="failed"):
        arena.resolve(f"run:{failed.id}")
    stop = arena.answer(f"run:{run_a.id}", QUESTION, GREEDY)
    cut = stop[3:6]
    assert cut and cut not in arena.answer(f"run:{run_a.id}", QUESTION, ChatSettings(max_new_tokens=24, stop=(cut,)))


def test_pickle_only_adapter_is_refused(trained, tmp_path):
    ws, (run_a, _) = trained
    folder = tmp_path / "pickled"
    shutil.copytree(run_a.output_dir(), folder)
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")
    pool = AdapterPool("demo")
    with pytest.raises(UserError, match="safetensors only") as info:
        pool.add(folder)
    assert "adapter_model.bin" in str(info.value)
    model_folder = tmp_path / "pickled-model"
    model_folder.mkdir()
    (model_folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model_folder / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(UserError, match="safetensors only"):
        AdapterPool(str(model_folder))


def test_adapter_for_another_base_is_refused(trained, shared):
    ws, (run_a, _) = trained
    other = str(shared / "models" / "aidreams-260k")
    pool = AdapterPool(other)
    with pytest.raises(UserError) as info:
        pool.add(run_a.output_dir())
    text = str(info.value)
    assert "assets/model" in text and "aidreams-260k" in text  # both bases named
    assert pool.names() == [BASE]
