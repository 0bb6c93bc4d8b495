"""The curated Hub models' facts against transformers/PEFT, and a token that never reaches the disk."""

import pytest

from helpers import fast_overrides
from studio import hub
from studio.workspace import Workspace


@pytest.mark.parametrize("entry", hub.CURATED, ids=lambda m: m.name)
def test_curated_parameter_counts_match_the_architecture(entry):
    """`params` and `lora_params` are what the model built from `arch` counts (meta device: no
    weights, no download), so the sizes and memory figures on the page are the real ones."""
    import torch
    from peft import get_peft_model
    from transformers import CONFIG_MAPPING, AutoModelForCausalLM

    from studio.config import StudioConfig
    from studio.models import peft_config_for

    arch = dict(entry.arch)
    config = CONFIG_MAPPING[arch.pop("model_type")](**arch)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == entry.params
    trainable, _ = get_peft_model(model, peft_config_for(StudioConfig().method)).get_nb_trainable_parameters()
    assert trainable == entry.lora_params


def test_token_never_reaches_the_run_folder(home):
    """A token set in the form is held in memory only: a whole run (the demo model is local, so no
    Hub call happens) writes it into none of config.yaml, status.json, logs.txt, metrics, data."""
    secret = "hf_" + "SeCrEt7" * 5
    hub.set_token(secret)
    try:
        ws = Workspace(home)
        run = ws.start(fast_overrides(max_steps=2, eval_every=0))
        ws.jobs.wait(300)
        assert run.status()["state"] == "completed", run.status()["message"]
    finally:
        hub.set_token("")
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in files) and any(p.name == "logs.txt" for p in files)
    leaked = [str(p) for p in files if secret.encode() in p.read_bytes()]
    assert leaked == []
