from studio.metrics import CJKAwareTokenizer, bleu, rouge


def test_chinese_is_scored_per_character():
    assert CJKAwareTokenizer().tokenize("热的反义词是冷。 Hot 3加4") == ["热", "的", "反", "义", "词", "是", "冷", "hot", "3", "加", "4"]
    assert rouge(["热的反义词是冷。"], ["热的反义词是冷。"])["rougeL"] == 1.0
    assert 0 < rouge(["热的反义词是热。"], ["热的反义词是冷。"])["rougeL"] < 1


def test_english_rouge_and_bleu():
    scores = rouge(["the cat sat"], ["the cat sat down"])
    assert round(scores["rouge1"], 4) == round(2 * 1 * 0.75 / 1.75, 4)
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) > 99.9
