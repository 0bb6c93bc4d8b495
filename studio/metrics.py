"""Text-overlap scores: ROUGE (rouge-score, the ROUGE-1.5.5 reimplementation) and BLEU (sacrebleu).

    rouge(predictions, references)   # {'rouge1': .., 'rouge2': .., 'rougeL': ..} mean F1
    bleu(predictions, references)    # corpus BLEU, 0-100

rouge-score's default tokenizer drops every non-ASCII character, which would score all Chinese
text as empty; CJK characters are therefore split into single-character tokens first.
"""

from __future__ import annotations

import re

_CJK = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af])")


class CJKAwareTokenizer:
    def __init__(self):
        from rouge_score import tokenize

        self._tokenize = tokenize.tokenize

    def tokenize(self, text: str) -> list[str]:
        tokens = []
        for part in _CJK.split(text):
            if _CJK.fullmatch(part or " "):
                tokens.append(part)
            elif part.strip():
                tokens += self._tokenize(part, None)
        return tokens


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=CJKAwareTokenizer())
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for pred, ref in zip(predictions, references):
        for name, score in scorer.score(ref, pred).items():
            totals[name] += score.fmeasure
    n = max(1, len(predictions))
    return {name: value / n for name, value in totals.items()}


def bleu(predictions: list[str], references: list[str]) -> float:
    import sacrebleu

    tokenize = "zh" if any(_CJK.search(r) for r in references) else "13a"
    return sacrebleu.corpus_bleu(predictions, [references], tokenize=tokenize).score
