from pathlib import Path

import pytest

from studio.config import (StudioConfig, apply_overrides, check, field_help, field_label, field_specs,
                           from_dict, get_value, load_recipe, resolve_key, save_recipe, settings_help,
                           to_dict, validate)
from studio.errors import UserError
from studio.i18n import LANGUAGES, table

ROOT = Path(__file__).resolve().parents[2]
# recipes/accelerate/ holds accelerate launch configs, checked in test_distributed_launch.py.
RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if p.parent.name != "accelerate")


def test_defaults_are_valid():
    assert validate(StudioConfig()) == {}


def test_short_keys_reach_their_fields():
    cfg = apply_overrides(StudioConfig(), [
        "model=org/model", "data=train.jsonl", "method=qlora", "epochs=2", "learning_rate=1e-4",
        "batch_size=4", "max_length=512", "max_steps=30", "method.lora_r=8", "lora_alpha=16"])
    assert cfg.model.path == "org/model" and cfg.data.path == "train.jsonl"
    assert cfg.method.method == "qlora" and cfg.train.epochs == 2.0
    assert cfg.train.learning_rate == 1e-4 and cfg.train.batch_size == 4
    assert cfg.train.max_length == 512 and cfg.train.max_steps == 30
    assert cfg.method.lora_r == 8 and cfg.method.lora_alpha == 16


def test_overrides_do_not_mutate_the_original():
    base = StudioConfig()
    apply_overrides(base, ["epochs=9"])
    assert base.train.epochs == 3.0


@pytest.mark.parametrize("item, message", [
    ("learning_rate=-1e-4", "Learning rate must be at least 0"),
    ("batch_size=0", "Batch size must be at least 1"),
    ("method=magic", "Method must be one of full, freeze, lora, qlora"),
    ("val_size=0.6", "Validation share must be at most 0.5"),
])
def test_bad_values_become_one_sentence(item, message):
    problems = validate(apply_overrides(StudioConfig(), [item]))
    assert any(p.render("en").startswith(message) for p in problems.values()), problems
    with pytest.raises(UserError):
        check(apply_overrides(StudioConfig(), [item]))


def test_zero_learning_rate_is_refused():
    assert "train.learning_rate" in validate(apply_overrides(StudioConfig(), ["learning_rate=0"]))


@pytest.mark.parametrize("item, fragment", [
    ("batch_size=abc", "Batch size needs a whole number"),
    ("epochs=lots", "Epochs needs a number"),
    ("max_grad_norm=inf", "Max gradient norm needs a number, not 'inf'"),
    ("learning_rate=nan", "needs a number, not 'nan'"),
    ("learnin_rate=1", "Did you mean 'learning_rate'"),
    ("novalue", "Expected key=value"),
])
def test_unparsable_overrides(item, fragment):
    with pytest.raises(UserError, match=fragment):
        apply_overrides(StudioConfig(), [item])


def test_every_field_is_reachable_by_its_bare_or_dotted_name():
    for key in ["train.seed", "data.val_size", "method.quant_bits", "model.trust_remote_code", "name"]:
        assert resolve_key(key) == key
    assert resolve_key("seed") == "train.seed"


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(StudioConfig(), ["epochs=1.5", "method=freeze", "name=my run"])
    save_recipe(cfg, tmp_path / "r.yaml")
    assert load_recipe(tmp_path / "r.yaml") == cfg


def test_unknown_recipe_keys_are_errors():
    with pytest.raises(UserError, match="Unknown setting 'train.epoch'"):
        from_dict({"train": {"epoch": 3}})


def test_broken_yaml_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(bad)


def test_there_are_recipes():
    names = {p.name for p in RECIPES}
    assert "demo.yaml" in names and len(RECIPES) >= 4


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_recipe_validates_and_names_its_command(path):
    cfg = load_recipe(path)
    assert validate(cfg) == {}
    first = path.read_text().splitlines()[0]
    assert first == f"# studio train {path.relative_to(ROOT)}", first
    assert to_dict(cfg)["model"]["path"]
    assert get_value(cfg, "method") in ("full", "freeze", "lora", "qlora")


def test_every_field_has_a_label_and_help_in_every_language():
    for key in field_specs():
        for msg in (field_label(key), field_help(key)):
            assert msg.code in table(), msg.code
            for lang in LANGUAGES:
                assert msg.render(lang) and msg.render(lang) != msg.code


def test_all_problems_are_reported_at_once_and_render_in_chinese():
    problems = validate(apply_overrides(StudioConfig(), ["learning_rate=-1", "batch_size=0", "lora_r=0"]))
    assert set(problems) == {"train.learning_rate", "train.batch_size", "method.lora_r"}
    zh = problems["train.batch_size"].render("zh")
    assert "批大小" in zh and "Batch" not in zh


def test_a_bad_value_names_its_field_in_the_error():
    with pytest.raises(UserError) as caught:
        apply_overrides(StudioConfig(), ["batch_size=abc"])
    assert caught.value.key == "train.batch_size"
    assert "批大小" in caught.value.render("zh")


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_settings_help_lists_every_field(lang):
    text = settings_help(lang)
    assert all(f"  {key} = " in text for key in field_specs())
    assert field_help("train.epochs").render(lang) in text
