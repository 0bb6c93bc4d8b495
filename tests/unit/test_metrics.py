"""studio.metrics against the reference implementations (sacreBLEU, rouge-score) and their published
test vectors (../shared/fixtures/metrics), plus Chinese, Japanese, Korean, mixed and multi-reference
cases whose expected values are computed independently of studio.metrics."""

import json
import math
from collections import Counter

import pytest
import sacrebleu
from rouge_score import rouge_scorer, tokenize as rs_tokenize

from studio import metrics
from studio.errors import UserError
from studio.metrics import (CJKAwareTokenizer, ScoreTokenizer, bleu, bleu_result, extra_metric, per_example,
                            perplexity, rouge, rouge_pair, score, sentence_bleu)

TOL = 1e-6


@pytest.fixture
def vectors(shared):
    return json.loads((shared / "metrics" / "metric_test_vectors.json").read_text(encoding="utf-8"))


def per_example_refs(streams):
    """sacreBLEU's reference streams (one list per reference slot) -> references per example."""
    return [list(refs) for refs in zip(*streams)]


# ---- the published vectors -----------------------------------------------------------------

def test_bleu_corpus_vectors(vectors):
    for case in vectors["bleu_corpus"]:
        refs = per_example_refs(case["refs"])
        ours = bleu(case["hyps"], refs, **case["kwargs"])
        reference = sacrebleu.corpus_bleu(case["hyps"], case["refs"], **case["kwargs"]).score
        assert abs(ours - reference) <= TOL, case["kwargs"]
        assert abs(ours - case["score"]) <= TOL, case["kwargs"]


def test_bleu_max_ngram_order_vectors(vectors):
    from sacrebleu.metrics import BLEU

    for case in vectors["bleu_max_ngram_order"]:
        ours = bleu(case["hyps"], per_example_refs(case["refs"]), max_ngram_order=case["order"])
        reference = BLEU(max_ngram_order=case["order"]).corpus_score(case["hyps"], case["refs"]).score
        assert abs(ours - reference) <= TOL
        assert f"{ours:.2f}" == case["score_2dp"]


@pytest.mark.parametrize("group", ["bleu_raw_floor_0.01_fraction", "bleu_effective_order_raw_floor_0.01_fraction"])
def test_bleu_raw_floor_vectors(vectors, group):
    # sacreBLEU's raw_corpus_bleu: floor smoothing, no tokenization, effective order.
    for case in vectors[group]:
        ours = bleu(case["hyps"], per_example_refs(case["refs"]), smooth_method="floor", smooth_value=0.01,
                    tokenize="none", force=True, use_effective_order=True)
        reference = sacrebleu.raw_corpus_bleu(case["hyps"], case["refs"], smooth_value=0.01).score
        assert abs(ours - reference) <= TOL
        assert abs(ours / 100 - case["score_fraction"]) <= TOL


def test_bleu_statistics_vector(vectors):
    case = vectors["bleu_statistics"]
    refs = per_example_refs(case["refs"])
    result = bleu_result(case["hyps"], refs, smooth_method="floor", smooth_value=0.1)
    assert result.counts == case["counts"] and result.totals == case["totals"]
    assert abs(result.score / 100 - case["score_fraction_floor_0.1"]) <= TOL
    assert bleu(case["hyps"], refs, smooth_method="floor", smooth_value=0.0) == case["score_fraction_floor_0.0"]


def test_sentence_bleu_vectors(vectors):
    group = vectors["bleu_sentence_effective_order"]
    for case in group["cases"]:
        options = {k: case[k] for k in ("smooth_method", "smooth_value", "lowercase", "tokenize")}
        ours = sentence_bleu(group["sys"], group["ref"], **options)
        reference = sacrebleu.sentence_bleu(group["sys"], [group["ref"]], **options).score
        assert abs(ours - reference) <= TOL, case
        assert abs(ours - case["score"]) <= group["tolerance"], case


def test_rouge_simple_vectors(vectors):
    for case in vectors["rouge"]["simple"]:
        tol = 10 ** -case.get("places", 6)
        ours = rouge_pair(case["target"], case["prediction"], types=[case["type"]])[case["type"]]
        reference = rouge_scorer.RougeScorer([case["type"]]).score(case["target"], case["prediction"])[case["type"]]
        assert abs(ours["fmeasure"] - reference.fmeasure) <= TOL
        for key, name in (("p", "precision"), ("r", "recall"), ("f", "fmeasure")):
            assert abs(ours[name] - case[key]) <= tol, (case, name)


def _lines(shared, name):
    return (shared / "metrics" / "rouge-testdata" / name).read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("name,line", [("rouge155_line0", 0), ("rouge155_line1", 1), ("rouge155_line1_stemmed", 1)])
def test_rouge_against_rouge155(vectors, shared, name, line):
    case = vectors["rouge"][name]
    target, prediction = _lines(shared, "target.txt")[line], _lines(shared, "prediction.txt")[line]
    types = [k for k in ("rouge1", "rouge2", "rougeL") if k in case]
    ours = rouge_pair(target, prediction, types=types, stem=case["use_stemmer"])
    reference = rouge_scorer.RougeScorer(types, use_stemmer=case["use_stemmer"]).score(target, prediction)
    for kind in types:
        assert abs(ours[kind]["fmeasure"] - reference[kind].fmeasure) <= TOL
        for key, attr in (("p", "precision"), ("r", "recall"), ("f", "fmeasure")):
            assert round(ours[kind][attr], case["places"]) == pytest.approx(case[kind][key], abs=10 ** -case["places"])
    # the same through the corpus function (one example: the mean is that example's F1)
    means = rouge([prediction], [target], stem=case["use_stemmer"], types=types)
    assert all(abs(means[k] - reference[k].fmeasure) <= TOL for k in types)


def test_rouge_lsum_multi_sentence_vector(vectors, shared):
    case = vectors["rouge"]["rougeLsum_multi_stemmed"]
    folder = shared / "metrics" / "rouge-testdata"
    target = (folder / "target_multi.0.txt").read_text(encoding="utf-8")
    prediction = (folder / "prediction_multi.0.txt").read_text(encoding="utf-8")
    ours = rouge_pair(target, prediction, types=["rougeLsum"], stem=True)["rougeLsum"]
    reference = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True).score(target, prediction)["rougeLsum"]
    assert abs(ours["fmeasure"] - reference.fmeasure) <= TOL
    for key, attr in (("p", "precision"), ("r", "recall"), ("f", "fmeasure")):
        assert ours[attr] == pytest.approx(case[key], abs=10 ** -case["places"])


def test_ascii_tokens_are_exactly_rouge_scores(shared):
    texts = _lines(shared, "target.txt") + _lines(shared, "prediction_multi.0.txt") + [
        "Hello, World! It's 3:45pm -- e-mail me_now", "  ", "", "UPPER lower 123abc"]
    for stem in (False, True):
        stemmer = rouge_scorer.tokenizers.DefaultTokenizer(use_stemmer=stem)._stemmer
        for text in texts:
            assert ScoreTokenizer(stem=stem).tokenize(text) == rs_tokenize.tokenize(text, stemmer)


# ---- Chinese, Japanese, Korean, mixed ------------------------------------------------------------

ZH_PRED = ["今天天气很好，我们去公园散步吧。", "机器学习是人工智能的一个分支。", "热的反义词是冷。"]
ZH_REF = ["今天天气不错，我们去公园走走。", "机器学习属于人工智能领域。", "热的反义词是冷。"]


class Whitespace:
    def tokenize(self, text):
        return text.split()


def spaced(text):
    """Chinese characters joined by spaces, punctuation dropped: the independent reference input."""
    return " ".join(ch for ch in text if "\u4e00" <= ch <= "\u9fff")


def test_chinese_is_scored_per_character():
    assert CJKAwareTokenizer().tokenize("热的反义词是冷。 Hot 3加4") == ["热", "的", "反", "义", "词", "是", "冷", "hot", "3", "加", "4"]
    assert rouge(["热的反义词是冷。"], ["热的反义词是冷。"])["rougeL"] == 1.0
    assert 0 < rouge(["热的反义词是热。"], ["热的反义词是冷。"])["rougeL"] < 1


def test_chinese_rouge_equals_rouge_score_on_spaced_characters():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=Whitespace())
    expected = {k: 0.0 for k in ("rouge1", "rouge2", "rougeL")}
    for pred, ref in zip(ZH_PRED, ZH_REF):
        for k, s in scorer.score(spaced(ref), spaced(pred)).items():
            expected[k] += s.fmeasure / len(ZH_PRED)
    ours = rouge(ZH_PRED, ZH_REF)
    assert all(abs(ours[k] - expected[k]) <= TOL for k in expected)
    assert 0 < ours["rouge2"] < ours["rouge1"] < 1


def test_chinese_bleu_equals_sacrebleu_zh():
    assert abs(bleu(ZH_PRED, ZH_REF) - sacrebleu.corpus_bleu(ZH_PRED, [ZH_REF], tokenize="zh").score) <= TOL
    for pred, ref in zip(ZH_PRED, ZH_REF):
        assert abs(sentence_bleu(pred, ref) - sacrebleu.sentence_bleu(pred, [ref], tokenize="zh").score) <= TOL


def lcs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def f1(overlap, n_pred, n_ref):
    if not overlap:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def test_mixed_chinese_and_english_by_hand():
    pred, ref = "我爱 Python 编程!", "我喜欢用 Python 和 C++ 编程。"
    pred_tokens = ["我", "爱", "python", "编", "程"]
    ref_tokens = ["我", "喜", "欢", "用", "python", "和", "c", "编", "程"]
    assert ScoreTokenizer().tokenize(pred) == pred_tokens and ScoreTokenizer().tokenize(ref) == ref_tokens
    unigrams = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    bigrams = sum((Counter(zip(pred_tokens, pred_tokens[1:])) & Counter(zip(ref_tokens, ref_tokens[1:]))).values())
    ours = rouge([pred], [ref])
    assert abs(ours["rouge1"] - f1(unigrams, 5, 9)) <= TOL
    assert abs(ours["rouge2"] - f1(bigrams, 4, 8)) <= TOL
    assert abs(ours["rougeL"] - f1(lcs(pred_tokens, ref_tokens), 5, 9)) <= TOL
    assert abs(bleu([pred], [ref]) - sacrebleu.corpus_bleu([pred], [[ref]], tokenize="zh").score) <= TOL


def test_japanese_and_korean_split_into_characters():
    # Without spaces or punctuation, per-character tokens are sacreBLEU's `char` tokenization.
    hyps = ["わたしはがくせいです", "오늘날씨가좋네요"]
    refs = ["わたしはせんせいです", "오늘날씨가맑네요"]
    assert abs(bleu(hyps, refs) - sacrebleu.corpus_bleu(hyps, [refs], tokenize="char").score) <= TOL
    assert score(hyps, refs)["tokenization"] == "characters"
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=Whitespace())
    expected = sum(scorer.score(" ".join(r), " ".join(h))["rougeL"].fmeasure for h, r in zip(hyps, refs)) / 2
    assert abs(rouge(hyps, refs)["rougeL"] - expected) <= TOL


def test_letters_of_every_script_are_kept_in_words():
    assert ScoreTokenizer().tokenize("Café Привет, мир! हिन्दी") == ["café", "привет", "мир", "हिन्दी"]
    assert rouge(["Привет мир"], ["Привет мир"])["rouge1"] == 1.0


def test_tokenization_follows_lang_and_text():
    assert score(["the cat"], ["the cat"])["tokenization"] == "words"
    assert score(["猫"], ["猫"])["tokenization"] == "characters"
    assert score(["the cat"], ["the cat"], lang="zh")["tokenization"] == "characters"
    # Forced to words, a Chinese sentence is one whitespace token: the mistake the mode avoids.
    assert score(["热的反义词是热"], ["热的反义词是冷"], lang="en")["rouge1"] == 0.0
    assert score(["热的反义词是热"], ["热的反义词是冷"])["rouge1"] > 0.8


# ---- several references, the combined score, per example ------------------------------------

def test_several_references_per_example():
    hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    refs = [["The dog bit the man.", "The dog had bit the man."],
            ["It was not unexpected.", "No one was surprised."],
            ["The man bit him first.", "The man had bitten the dog."]]
    streams = [list(s) for s in zip(*refs)]
    assert abs(bleu(hyps, refs) - sacrebleu.corpus_bleu(hyps, streams).score) <= TOL
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    expected = {k: sum(scorer.score_multi(r, h)[k].fmeasure for h, r in zip(hyps, refs)) / 3
                for k in scorer.rouge_types}
    ours = rouge(hyps, refs)
    assert all(abs(ours[k] - expected[k]) <= TOL for k in expected)
    assert ours["rouge1"] > rouge(hyps, [r[1] for r in refs])["rouge1"]  # the best reference counts


def test_uneven_reference_counts():
    hyps, refs = ["a b c d", "e f g h"], [["a b c d", "a b x d"], ["e f g i"]]
    expected = sacrebleu.corpus_bleu(hyps, [["a b c d", "e f g i"], ["a b x d", None]]).score
    assert abs(bleu(hyps, refs) - expected) <= TOL


def test_score_keys_and_ranges():
    result = score(["the cat sat on the mat", "a dog"], [["the cat sat on a mat"], ["the dog", "a dog barked"]])
    assert set(result) >= {"rouge1", "rouge2", "rougeL", "bleu", "tokenization", "examples", "references"}
    assert all(0 <= result[k] <= 1 for k in ("rouge1", "rouge2", "rougeL")) and 0 <= result["bleu"] <= 100
    assert result["examples"] == 2 and result["references"] == 2
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) > 99.9
    english = rouge(["the cat sat"], ["the cat sat down"])
    assert abs(english["rouge1"] - 2 * 1 * 0.75 / 1.75) <= TOL


def test_stemming_is_an_option():
    assert rouge(["the runners running"], ["the runner runs"], stem=True)["rouge1"] > \
        rouge(["the runners running"], ["the runner runs"])["rouge1"]


def test_per_example_rows():
    preds, refs = ["the cat sat", "热的反义词是热。", ""], ["the cat sat down", "热的反义词是冷。", "nothing"]
    rows = per_example(preds, refs)
    assert [set(r) for r in rows] == [{"rougeL", "bleu"}] * 3
    assert rows[2] == {"rougeL": 0.0, "bleu": 0.0}
    # the set holds Chinese, so every row is scored per character (rows compare with each other)
    for row, pred, ref in zip(rows, preds, refs):
        expected = sacrebleu.sentence_bleu(pred, [ref], tokenize="zh").score
        assert abs(row["bleu"] - expected) <= TOL
        assert abs(row["rougeL"] - rouge([pred], [ref], lang="zh")["rougeL"]) <= TOL


@pytest.mark.parametrize("preds,refs,code", [
    ([], [], "scores.no_predictions"),
    (["a", "b"], ["a"], "scores.count_mismatch"),
    (["a"], [[]], "scores.no_reference"),
])
def test_bad_input_is_one_sentence(preds, refs, code):
    for fn in (score, rouge, bleu, per_example):
        with pytest.raises(UserError) as err:
            fn(preds, refs)
        assert err.value.msg.code == code


def test_perplexity():
    assert perplexity(0.0) == 1.0
    assert abs(perplexity(2.0) - math.exp(2.0)) <= TOL
    assert perplexity(1e6) == math.inf
    assert perplexity(None) is None
    assert math.isnan(perplexity(float("nan")))


# ---- extra metrics through `evaluate` ----------------------------------------------------------

@pytest.mark.parametrize("name", ["", "../evil", "someone/metric", "chrf.py", "x" * 100, "CHRF"])
def test_extra_metric_refuses_names_that_are_not_canonical(name):
    with pytest.raises(UserError) as err:
        extra_metric(name, ["a"], ["a"])
    assert err.value.msg.code == "scores.metric_name"


def test_extra_metric_offline_is_one_sentence(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        extra_metric("surely_not_a_cached_metric", ["a"], ["a"])
    assert err.value.msg.code == "scores.metric_unavailable"
    assert "surely_not_a_cached_metric" in str(err.value)


class FakeMetric:
    def __init__(self, many):
        import datasets

        ref = datasets.Sequence(datasets.Value("string")) if many else datasets.Value("string")
        self.features = datasets.Features({"predictions": datasets.Value("string"), "references": ref})
        self.seen = None

    def compute(self, predictions, references):
        import numpy as np

        self.seen = references
        return {"score": np.float64(0.5), "count": 2, "flag": True, "per_item": [1, 2]}


def test_extra_metric_passes_references_as_the_metric_declares(monkeypatch):
    import evaluate

    flat, nested = FakeMetric(many=False), FakeMetric(many=True)
    monkeypatch.setattr(evaluate, "load", lambda name: {"flat": flat, "nested": nested}[name])
    assert extra_metric("flat", ["a", "b"], ["a", "c"]) == {"score": 0.5, "count": 2.0}
    assert flat.seen == ["a", "c"]
    extra_metric("nested", ["a", "b"], [["a", "x"], ["c"]])
    assert nested.seen == [["a", "x"], ["c"]]
    with pytest.raises(UserError) as err:
        extra_metric("flat", ["a"], [["a", "b"]])
    assert err.value.msg.code == "scores.metric_one_reference"

    def broken(**_):
        raise ValueError("bad input shape\nmore")
    flat.compute = broken
    with pytest.raises(UserError) as err:
        extra_metric("flat", ["a"], ["a"])
    assert err.value.msg.code == "scores.metric_failed" and "bad input shape" in str(err.value)


def test_module_imports_nothing_heavy():
    import subprocess
    import sys

    code = "import sys, studio.metrics; print('evaluate' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    assert metrics.TOKENIZATIONS == ("words", "characters")
