"""Text-overlap scores for evaluation: ROUGE (the rouge-score algorithm) and BLEU (sacreBLEU).

    score(preds, refs, lang=None, stem=False)
        # {'rouge1': .., 'rouge2': .., 'rougeL': .. (mean F1, 0-1), 'bleu': .. (corpus, 0-100),
        #  'tokenization': 'words' | 'characters', 'examples': n, 'references': max refs per example}
    per_example(preds, refs)          # [{'rougeL': .., 'bleu': ..}] (sentence BLEU, effective order)
    rouge(preds, refs, stem=True)     # {'rouge1', 'rouge2', 'rougeL'} mean F1
    bleu(preds, refs)                 # corpus BLEU, 0-100; sacreBLEU options pass through
    rouge_pair(target, prediction)    # {'rouge1': {'precision', 'recall', 'fmeasure'}, ...}
    extra_metric("chrf", preds, refs) # any metric of the Hugging Face `evaluate` library, by name
    perplexity(mean_loss)             # exp(loss)

`refs` holds one reference per example (a list of strings) or several (a list of lists of
strings); several references score as sacreBLEU and rouge-score define it (BLEU: clipped counts
over all references, closest reference length; ROUGE: the best-matching reference per example).
Everything here runs offline: `evaluate.load("rouge")` would fetch code from the Hub.

Tokenization (`lang`, else detected from the text; reported as `tokenization`):
- "words": sacreBLEU's `13a` tokenizer; for ROUGE, rouge-score's tokenizer (lowercase, split on
  anything that is not a letter or digit, optional Porter stemming of words over 3 letters).
  One deliberate change: rouge-score keeps only ASCII letters and digits, which turns "café"
  into "caf" and Russian text into nothing; here letters and digits of every script are kept.
  On ASCII text the tokens are exactly rouge-score's.
- "characters" (chosen when any text holds Chinese, Japanese or Korean): each Han character,
  kana and Hangul syllable is one token, other text is tokenized as words — sacreBLEU's `zh`
  tokenizer, with kana and Hangul split the same way (sacreBLEU's splits Han characters only;
  on Chinese text the result is exactly `tokenize="zh"`).
  Counting whitespace-separated "words" would make a whole Chinese sentence one token, and
  counting every character of English text would inflate English scores.
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache
from pathlib import Path

import regex

from studio.errors import UserError
from studio.i18n import Msg

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
TOKENIZATIONS = ("words", "characters")
CJK_LANGS = ("zh", "ja", "ko")

# Han ideographs (with extensions and compatibility forms), bopomofo, kana (with the halfwidth
# forms) and Hangul (jamo and syllables): scored one character per token.
_CJK_CLASS = (r"[\p{Han}\p{Bopomofo}\p{Hiragana}\p{Katakana}\p{Hangul}"
              r"\u3005\u3006\u30fc\uff66-\uff9f]")
_CJK = regex.compile(_CJK_CLASS)
_CJK_PIECES = regex.compile(f"({_CJK_CLASS})")
# What sacreBLEU's `zh` tokenizer leaves joined: kana, Hangul and the Han characters beyond the
# Basic Multilingual Plane (its range for them is written in a way that misses them).
_ALSO_SPLIT = regex.compile(r"([\p{Hiragana}\p{Katakana}\p{Hangul}\u30fc\uff66-\uff9f\U00020000-\U0003ffff])")
# rouge-score's `[^a-z0-9]+` (applied after lowercasing) for every script: marks stay in words
# so that Indic and other scripts with combining signs are not cut apart.
_NOT_WORD = regex.compile(r"[^\p{L}\p{M}\p{N}]+")


def _lang_tokenization(lang: str | None) -> str | None:
    if not lang or lang == "auto":
        return None
    return "characters" if lang.lower().split("-")[0].split("_")[0] in CJK_LANGS else "words"


def tokenization_for(texts, lang: str | None = None) -> str:
    """'characters' for Chinese/Japanese/Korean (`lang`, else any CJK character in `texts`)."""
    chosen = _lang_tokenization(lang)
    if chosen:
        return chosen
    return "characters" if any(_CJK.search(text) for text in texts if text) else "words"


def tokenization_note(tokenization: str) -> Msg:
    """The sentence the UI shows next to the scores: what a token was."""
    return Msg("scores.tokenization_characters" if tokenization == "characters" else "scores.tokenization_words")


class ScoreTokenizer:
    """rouge-score's tokenizer (see the module docstring) with CJK characters as single tokens."""

    def __init__(self, stem: bool = False, characters: bool = True):
        self.characters = characters
        self._stemmer = _porter() if stem else None

    def _words(self, text: str) -> list[str]:
        tokens = _NOT_WORD.split(text.lower())
        if self._stemmer:  # as rouge-score: only words longer than 3 characters are stemmed
            tokens = [self._stemmer.stem(x) if len(x) > 3 else x for x in tokens]
        return [x for x in tokens if x and not _NOT_WORD.search(x)]

    def tokenize(self, text: str) -> list[str]:
        if not self.characters:
            return self._words(text)
        tokens: list[str] = []
        for piece in _CJK_PIECES.split(text):
            if len(piece) == 1 and _CJK.match(piece):
                tokens.append(piece)
            elif piece:
                tokens += self._words(piece)
        return tokens


# Kept for callers of the first version: the tokenizer that splits CJK characters.
CJKAwareTokenizer = ScoreTokenizer


def _porter():
    from nltk.stem import porter  # the stemmer rouge-score's DefaultTokenizer uses

    return porter.PorterStemmer()


# ---- input checks ----------------------------------------------------------------------------

def _as_text(value) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _check(predictions, references) -> tuple[list[str], list[list[str]]]:
    """Predictions as strings and references as one list per example, or one clear sentence."""
    predictions = [_as_text(p) for p in (predictions or [])]
    references = list(references or [])
    if not predictions:
        raise UserError("scores.no_predictions")
    if len(predictions) != len(references):
        raise UserError("scores.count_mismatch", predictions=len(predictions), references=len(references))
    per_example = []
    for number, refs in enumerate(references, 1):
        refs = [refs] if isinstance(refs, str) or refs is None else list(refs)
        refs = [_as_text(r) for r in refs if r is not None]
        if not refs:
            raise UserError("scores.no_reference", example=number)
        per_example.append(refs)
    return predictions, per_example


def _all_texts(predictions, references):
    yield from predictions
    for refs in references:
        yield from refs


# ---- ROUGE -----------------------------------------------------------------------------------

def _scorer(types, stem: bool, tokenization: str):
    from rouge_score import rouge_scorer

    tokenizer = ScoreTokenizer(stem=stem, characters=tokenization == "characters")
    return rouge_scorer.RougeScorer(list(types), tokenizer=tokenizer)


def rouge_pair(target, prediction: str, *, types=ROUGE_TYPES, stem: bool = False,
               tokenization: str = "characters") -> dict[str, dict[str, float]]:
    """Precision, recall and F1 of one prediction against a target (or the best of several
    targets, as rouge-score's `score_multi`). Types: rouge1..rouge9, rougeL, rougeLsum."""
    targets = [target] if isinstance(target, str) else list(target)
    result = _scorer(types, stem, tokenization).score_multi(targets, _as_text(prediction))
    return {name: {"precision": s.precision, "recall": s.recall, "fmeasure": s.fmeasure}
            for name, s in result.items()}


def _rouge_f1(predictions, references, types, stem, tokenization) -> list[dict[str, float]]:
    scorer = _scorer(types, stem, tokenization)
    return [{name: s.fmeasure for name, s in scorer.score_multi(refs, pred).items()}
            for pred, refs in zip(predictions, references)]


def rouge(predictions, references, *, lang: str | None = None, stem: bool = False,
          types=ROUGE_TYPES, tokenization: str | None = None) -> dict[str, float]:
    """Mean ROUGE F1 over the examples (0-1)."""
    predictions, references = _check(predictions, references)
    tokenization = tokenization or tokenization_for(_all_texts(predictions, references), lang)
    rows = _rouge_f1(predictions, references, types, stem, tokenization)
    return {name: sum(row[name] for row in rows) / len(rows) for name in types}


# ---- BLEU ------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _zh_tokenizer():
    from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

    return TokenizerZh()


_zh_lock = threading.Lock()  # TokenizerZh's per-instance lru_cache is not meant for threads


def _cjk_tokens(text: str) -> str:
    """sacreBLEU's `zh` tokenization, with kana, Hangul and rare Han characters also split."""
    with _zh_lock:
        return _zh_tokenizer()(_ALSO_SPLIT.sub(r" \1 ", text))


def _bleu_inputs(predictions, references, tokenization, options):
    """(hypotheses, reference streams, sacreBLEU options) for the chosen tokenization."""
    options = dict(options)
    if "use_effective_order" in options:  # the name sacrebleu.corpus_bleu/sentence_bleu use
        options["effective_order"] = options.pop("use_effective_order")
    if "tokenize" not in options and tokenization == "characters":
        predictions = [_cjk_tokens(p) for p in predictions]
        references = [[_cjk_tokens(r) for r in refs] for refs in references]
        # Already tokenized, exactly as above; `force` silences the "looks tokenized" warning.
        options.update(tokenize="none", force=True)
    width = max(len(refs) for refs in references)
    # sacreBLEU takes one stream per reference slot; None marks an example with fewer references.
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    return predictions, streams, options


def bleu_result(predictions, references, *, lang: str | None = None, tokenization: str | None = None,
                **options):
    """sacreBLEU's corpus result (score, counts, totals, precisions, bp...). `options` are
    sacreBLEU's BLEU arguments (smooth_method, smooth_value, max_ngram_order, lowercase,
    effective_order (or use_effective_order), force, tokenize); an explicit `tokenize`
    replaces the automatic choice."""
    from sacrebleu.metrics import BLEU

    predictions, references = _check(predictions, references)
    tokenization = tokenization or tokenization_for(_all_texts(predictions, references), lang)
    hyps, streams, options = _bleu_inputs(predictions, references, tokenization, options)
    return BLEU(**options).corpus_score(hyps, streams)


def bleu(predictions, references, **options) -> float:
    """Corpus BLEU, 0-100, as sacreBLEU reports it (see `bleu_result` for the options)."""
    return bleu_result(predictions, references, **options).score


def sentence_bleu(prediction: str, references, *, lang: str | None = None, tokenization: str | None = None,
                  **options) -> float:
    """BLEU of one prediction (0-100); sacreBLEU's sentence_bleu options pass through
    (effective order is on unless `use_effective_order=False`)."""
    from sacrebleu.metrics import BLEU

    refs = [references] if isinstance(references, str) else list(references)
    [prediction], [refs] = _check([prediction], [refs])
    tokenization = tokenization or tokenization_for([prediction, *refs], lang)
    [hyp], streams, options = _bleu_inputs([prediction], [refs], tokenization, options)
    options.setdefault("effective_order", True)
    return BLEU(**options).sentence_score(hyp, [stream[0] for stream in streams]).score


# ---- together --------------------------------------------------------------------------------

def score(predictions, references, lang: str | None = None, stem: bool = False) -> dict:
    """ROUGE-1/2/L (mean F1, 0-1), corpus BLEU (0-100) and how the text was tokenized."""
    predictions, references = _check(predictions, references)
    tokenization = tokenization_for(_all_texts(predictions, references), lang)
    scores = rouge(predictions, references, stem=stem, tokenization=tokenization)
    scores["bleu"] = bleu(predictions, references, tokenization=tokenization)
    scores.update(tokenization=tokenization, examples=len(predictions),
                  references=max(len(refs) for refs in references))
    return scores


def per_example(predictions, references, lang: str | None = None, stem: bool = False) -> list[dict]:
    """ROUGE-L F1 (0-1) and sentence BLEU (0-100, effective order) for each example, with the
    tokenization chosen once for the whole set (so rows compare with each other)."""
    predictions, references = _check(predictions, references)
    tokenization = tokenization_for(_all_texts(predictions, references), lang)
    rows = _rouge_f1(predictions, references, ("rougeL",), stem, tokenization)
    return [{"rougeL": row["rougeL"], "bleu": sentence_bleu(pred, refs, tokenization=tokenization)}
            for row, pred, refs in zip(rows, predictions, references)]


def perplexity(mean_loss) -> float | None:
    """exp(mean cross-entropy loss); None without a loss, inf when it overflows, NaN stays NaN."""
    if not isinstance(mean_loss, (int, float)) or isinstance(mean_loss, bool):
        return None
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf


# ---- extra metrics from the Hugging Face `evaluate` library -----------------------------------

_METRIC_NAME = regex.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def extra_metric(name: str, predictions, references) -> dict[str, float]:
    """A metric of the `evaluate` library by its canonical name ('chrf', 'exact_match', 'ter'...):
    its numeric results. `evaluate.load` fetches the metric's code from the Hugging Face Hub (or
    its cache), so offline an uncached metric is refused with one sentence naming it.

    Only canonical names are accepted: `evaluate.load` runs the Python file it finds, so a path
    or a `user/space` id typed on a page must never reach it."""
    name = (name or "").strip()
    if not _METRIC_NAME.fullmatch(name) or Path(name).exists() or Path(name + ".py").exists():
        raise UserError("scores.metric_name", name=name)
    predictions, references = _check(predictions, references)
    try:
        import evaluate

        module = evaluate.load(name)
    except Exception:  # offline, unknown name, or the metric's own requirements missing
        raise UserError("scores.metric_unavailable", name=name) from None
    kwargs = _metric_inputs(module, name, predictions, references)
    try:
        result = module.compute(**kwargs)
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError("scores.metric_failed", name=name, detail=detail) from None
    return _numbers(result)


def _numbers(result) -> dict[str, float]:
    """The numeric entries of a metric's result (numpy scalars included; lists left out)."""
    numbers = {}
    for key, value in (result or {}).items():
        if hasattr(value, "item") and getattr(value, "size", 1) == 1:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers[key] = float(value)
    return numbers


def _metric_inputs(module, name, predictions, references) -> dict:
    """References as the metric declares them: one string per example, or a list per example."""
    features = module.features if isinstance(module.features, list) else [module.features]
    shapes = set()
    for feature in features:
        ref = feature.get("references") if hasattr(feature, "get") else None
        shapes.add("one" if type(ref).__name__ == "Value" else "many")
    single = all(len(refs) == 1 for refs in references)
    if single and "one" in shapes:
        return {"predictions": predictions, "references": [refs[0] for refs in references]}
    if "many" in shapes:
        return {"predictions": predictions, "references": references}
    raise UserError("scores.metric_one_reference", name=name)
