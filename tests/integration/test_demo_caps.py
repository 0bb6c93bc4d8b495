"""Demo mode's caps on the bundled demo model and data, through the Workspace (the network's door):
a model over the parameter cap is refused from its config.json, before any weights load, and epochs
that come to more steps than the cap are refused once the data is counted, with no run folder."""

import pytest

from studio.config import StudioConfig, apply_overrides
from studio.demo_mode import DemoLimits
from studio.errors import UserError
from studio.security import LaunchPolicy
from studio.workspace import Workspace


def demo_workspace(home, **limits) -> Workspace:
    return Workspace(home, LaunchPolicy(demo=DemoLimits(**limits)))


def test_a_model_over_the_parameter_cap_is_refused_before_loading(home, monkeypatch):
    import studio.models

    monkeypatch.setattr(studio.models, "load_model", lambda *a, **k: pytest.fail("weights were loaded"))
    ws = demo_workspace(home, max_params=1_000_000)  # the demo model has 1.4 M parameters
    with pytest.raises(UserError) as refused:
        ws.start(["max_steps=2"])
    assert refused.value.key == "model.path" and "up to 1.0 M" in str(refused.value)
    assert list((home / "runs").iterdir()) == []
    assert demo_workspace(home, max_params=10_000_000).admit(StudioConfig())  # under the cap: admitted


def test_epochs_over_the_step_cap_are_refused_with_no_run(home):
    ws = demo_workspace(home, max_steps=5)
    with pytest.raises(UserError) as refused:
        ws.start(["epochs=1", "batch_size=2"])
    assert refused.value.key == "train.epochs" and "5" in str(refused.value)
    assert list((home / "runs").iterdir()) == []
    cfg = apply_overrides(StudioConfig(), ["max_steps=6"])
    with pytest.raises(UserError) as refused:
        ws.admit(cfg)
    assert refused.value.key == "train.max_steps"
