"""Chat with what a run produced: a LoRA run's adapter/ and a full run's model/ load and generate."""

import torch

from helpers import fast_overrides
from studio.config import StudioConfig, apply_overrides
from studio.infer import generate_answers, load_for_inference, stream_reply
from studio.paths import DEMO_MODEL
from studio.workspace import Workspace

QUESTION = [{"role": "user", "content": "What is the opposite of hot?"}]


def train(home, overrides: list[str]):
    ws = Workspace(home)
    run = ws.jobs.start(apply_overrides(StudioConfig(), overrides))
    ws.jobs.wait(600)
    assert not ws.jobs.busy(), "training did not finish in time"
    status = run.status()
    assert status["state"] == "completed", status["message"]
    return run


def streamed(model, tokenizer, messages) -> str:
    reply = ""
    for reply in stream_reply(model, tokenizer, messages, max_new_tokens=24):
        pass
    return reply


def test_chat_through_a_lora_adapter(home):
    from peft import PeftModel

    run = train(home, fast_overrides(max_steps=4, eval_every=4))
    adapter = run.output_dir()
    assert adapter == run.path / "adapter"
    model, tokenizer = load_for_inference(adapter)
    assert isinstance(model, PeftModel) and not model.training
    (answer,) = generate_answers(model, tokenizer, [QUESTION], max_new_tokens=24)
    assert streamed(model, tokenizer, QUESTION).strip() == answer  # one model, one greedy answer
    # A second turn, with history content as gradio sends it (a list of parts).
    history = [*QUESTION, {"role": "assistant", "content": [{"type": "text", "text": answer or "cold"}]},
               {"role": "user", "content": [{"type": "text", "text": "What is 2 plus 3?"}]}]
    assert isinstance(streamed(model, tokenizer, history), str)


def test_chat_through_a_full_saved_model(home):
    from transformers import AutoModelForCausalLM

    run = train(home, fast_overrides(method="full", max_steps=4, eval_every=4, learning_rate=1e-3))
    folder = run.output_dir()
    assert folder == run.path / "model"
    model, tokenizer = load_for_inference(folder)
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    base = AutoModelForCausalLM.from_pretrained(DEMO_MODEL)
    changed = [n for n, p in model.named_parameters()
               if not torch.equal(p, base.get_parameter(n))]
    assert changed  # the saved model is the trained one, not the base
    answers = generate_answers(model, tokenizer, [QUESTION, [{"role": "user", "content": "What is 2 plus 3?"}]],
                               max_new_tokens=24)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert streamed(model, tokenizer, QUESTION).strip() == answers[0]
