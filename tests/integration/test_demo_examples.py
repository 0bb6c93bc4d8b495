"""The demo keeps its promise: after the demo recipe, the model answers the questions the page suggests.

The Chat tab suggests the questions in `assets/data/demo_examples.json` ({"en": [...], "zh": [...]});
the demo recipe of the same language (`recipes/demo.yaml` on `demo-en`, `recipes/demo_zh.yaml` on
`demo-zh`) must teach them: each answer must contain the fact asked for. Runs the recipe as a
first-time user does (about 40 s / 100 s of CPU training on an idle 2-core machine).
"""

import json

import pytest

from helpers import ROOT
from studio.config import load_recipe
from studio.infer import generate_answers, load_for_inference
from studio.paths import ASSETS
from studio.workspace import Workspace

# What a right answer to each suggested question contains.
EXPECTED = {
    "What is the opposite of hot?": "cold",
    "What colour is a banana?": "yellow",
    "What sound does a cow make?": "moo",
    "What is the plural of mouse?": "mice",
    "What day comes after Monday?": "Tuesday",
    "热的反义词是什么？": "冷",
    "牛是怎么叫的？": "哞哞",
}


RECIPES = {"en": "demo.yaml", "zh": "demo_zh.yaml"}


def examples() -> dict[str, list[str]]:
    return json.loads((ASSETS / "data" / "demo_examples.json").read_text(encoding="utf-8"))


def test_examples_file_has_both_languages_and_each_example_is_checked_here():
    data = examples()
    assert set(data) == {"en", "zh"}
    assert all(isinstance(q, str) and q.strip() for qs in data.values() for q in qs)
    assert 2 <= len(data["en"]) <= 8 and 2 <= len(data["zh"]) <= 8
    assert sorted(data["en"] + data["zh"]) == sorted(EXPECTED)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_example_question_is_in_its_training_data(lang):
    rows = json.loads((ASSETS / "data" / f"demo_{lang}.json").read_text(encoding="utf-8"))
    questions = {r["instruction"] for r in rows if not r["input"]}
    assert set(examples()[lang]) <= questions


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_demo_recipe_answers_the_suggested_examples(tmp_path, lang):
    cfg = load_recipe(ROOT / "recipes" / RECIPES[lang])
    assert cfg.data.path == f"demo-{lang}"
    ws = Workspace(tmp_path / "home")
    run = ws.jobs.start(cfg)
    ws.jobs.wait(900)
    assert not ws.jobs.busy(), "training did not finish in time"
    assert run.status()["state"] == "completed", run.status()["message"]
    model, tokenizer = load_for_inference(run.output_dir())
    questions = examples()[lang]
    answers = generate_answers(model, tokenizer, [[{"role": "user", "content": q}] for q in questions])
    wrong = [(q, a) for q, a in zip(questions, answers) if EXPECTED[q] not in a]
    assert not wrong, wrong
