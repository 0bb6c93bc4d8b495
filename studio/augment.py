"""More training rows from the ones there are: synonyms, EDA edits, reordering, substitution lists.

    options = AugmentOptions(methods=["synonym", "swap"], multiplier=1.0, seed=42)
    train = augment(splits["train"], options)        # originals + tagged new rows, deterministic
    splits = augment_splits(splits, options)         # the same, touching "train" only
    remove_augmented(train)                          # back to the originals
    side_by_side(train, 5)                           # [(original text, augmented text), ...]
    AugmentOptions(methods=["substitute"], substitutions={"咳嗽": ["胸痛", "呼吸困难", "咯血"]})

Methods (`METHODS`), English and Chinese alike (studio.thesaurus: WordNet and Cilin, offline):
  synonym     replace about `rate` of the words that have synonyms with one of them (at least one)
  insert      insert a synonym of a word of the text at a random place, about `rate` × words times
  swap        swap two words of the same script, about `rate` × words times
  delete      drop each word with probability `rate` (at least one, never all)
  reorder     shuffle the sentences (a last sentence without end punctuation stays last)
  substitute  replace each occurrence of a user-given term by one of its alternatives
The four word edits are EDA (Wei & Zou 2019, "Easy Data Augmentation"). Words are Latin words and
Chinese words (cut by longest match); numbers, punctuation and {placeholders} are never touched.

Each new row applies one method picked at random (others, then a few more tries, when it changes
nothing or repeats a copy; a row that cannot be changed gets no copy). `multiplier` is the average
number of new rows per original (1.5: one each, a second for half of them). By default only the
prompt is edited — user turns, not the system prompt — so answers are never corrupted by edits meant
for the question; `part="answer"` or `"all"` edits answers too (preference records: chosen and
rejected alike). Text records (plain `text`) have no prompt: their text is edited. The same records
and options give the same rows on any machine (one seeded generator per original row). New rows
follow the originals and carry `"_augmented": {"from": index of the original in the input, "ops":
[method]}`; rows already augmented are kept and not augmented again. Augment the training split only
(`augment_splits`): a copy of a validation or test row in training would leak it.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from dataclasses import dataclass, field

from studio.clean import options_from_dict
from studio.errors import UserError
from studio.formats import map_record_text, record_texts
from studio.thesaurus import STOPWORDS, split_words, synonyms

METHODS = ("synonym", "insert", "swap", "delete", "reorder", "substitute")
PARTS = ("prompt", "answer", "all")
MAX_MULTIPLIER = 20
_WORDS = ("word", "zh")  # pieces the word edits work on
_ROUNDS = 4  # tries of each method for one new row


@dataclass
class AugmentOptions:
    """What augmentation does; invalid values raise UserError."""

    methods: list = field(default_factory=lambda: ["synonym", "insert", "swap", "delete"])
    multiplier: float = 1.0          # new rows per original row, on average (0–20)
    seed: int = 42
    part: str = "prompt"             # "prompt" | "answer" | "all": which texts are edited
    substitutions: dict = field(default_factory=dict)   # {"咳嗽": ["胸痛", "呼吸困难", "咯血"]}
    rate: float = 0.1                # share of words an edit touches (EDA's alpha)

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        methods = [self.methods] if isinstance(self.methods, str) else self.methods
        if not isinstance(methods, (list, tuple)) or any(m not in METHODS for m in methods):
            raise UserError("augment.bad_methods", key="augment.methods", value=str(self.methods)[:80],
                            choices=", ".join(METHODS))
        self.methods = list(dict.fromkeys(methods))
        m = self.multiplier
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= MAX_MULTIPLIER:
            raise UserError("augment.bad_multiplier", key="augment.multiplier", value=str(m)[:40],
                            max=MAX_MULTIPLIER)
        self.multiplier = float(m)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise UserError("augment.bad_seed", key="augment.seed", value=str(self.seed)[:40])
        if self.part not in PARTS:
            raise UserError("augment.bad_part", key="augment.part", value=str(self.part)[:40],
                            choices=", ".join(PARTS))
        r = self.rate
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 1:
            raise UserError("augment.bad_rate", key="augment.rate", value=str(r)[:40])
        self.rate = float(r)
        self.substitutions = _check_substitutions(self.substitutions)
        if "substitute" in self.methods and not self.substitutions:
            raise UserError("augment.no_substitutions", key="augment.substitutions")

    @classmethod
    def from_dict(cls, data: dict | None) -> "AugmentOptions":
        return options_from_dict(cls, data, "augment")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_substitutions(value) -> dict[str, list[str]]:
    """{term: [alternatives]}; a single alternative may be given as a string."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError("augment.bad_substitutions", key="augment.substitutions", value=str(value)[:80])
    out = {}
    for term, alternatives in value.items():
        if isinstance(alternatives, str):
            alternatives = [alternatives]
        if (not isinstance(term, str) or not term.strip() or not isinstance(alternatives, (list, tuple))
                or not alternatives or not all(isinstance(a, str) for a in alternatives)):
            raise UserError("augment.bad_substitution", key="augment.substitutions", term=str(term)[:80],
                            value=str(alternatives)[:80])
        kept = [a for a in dict.fromkeys(alternatives) if a != term]
        if kept:
            out[term] = kept
    return out


# ---- edits of one text --------------------------------------------------------------------------

def _join(pieces: list[list[str]]) -> str:
    return "".join(p[0] for p in pieces)


def _word_positions(pieces) -> list[int]:
    return [i for i, (_, kind) in enumerate(pieces) if kind in _WORDS]


def _count(rate: float, n: int) -> int:
    return max(1, int(rate * n))


def _match_case(new: str, old: str) -> str:
    if old.isupper() and len(old) > 1:
        return new.upper()
    if old[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _replaceable(pieces) -> list[int]:
    return [i for i in _word_positions(pieces) if pieces[i][0].lower() not in STOPWORDS and synonyms(pieces[i][0])]


def edit_synonym(text: str, rng: random.Random, rate: float) -> str:
    pieces = split_words(text)
    candidates = _replaceable(pieces)
    rng.shuffle(candidates)
    for i in candidates[:_count(rate, len(_word_positions(pieces)))]:
        pieces[i][0] = _match_case(rng.choice(synonyms(pieces[i][0])), pieces[i][0])
    return _join(pieces)


def edit_insert(text: str, rng: random.Random, rate: float) -> str:
    pieces = split_words(text)
    candidates = _replaceable(pieces)
    if not candidates:
        return text
    positions = _word_positions(pieces)
    inserts = []
    for _ in range(_count(rate, len(positions))):
        source = pieces[rng.choice(candidates)]
        inserts.append((rng.choice(positions), rng.choice(synonyms(source[0])), source[1]))
    for at, word, kind in sorted(inserts, key=lambda x: x[0], reverse=True):  # from the end: positions hold
        # Latin words need a space on each side.
        pieces[at:at] = [[word, "word"], [" ", "space"]] if kind == "word" else [[word, "zh"]]
    return _join(pieces)


def edit_swap(text: str, rng: random.Random, rate: float) -> str:
    pieces = split_words(text)
    positions = _word_positions(pieces)
    if len(positions) < 2:
        return text
    by_kind: dict[str, list[int]] = {}
    for i in positions:
        by_kind.setdefault(pieces[i][1], []).append(i)
    for _ in range(_count(rate, len(positions))):
        i = rng.choice(positions)
        for _ in range(5):  # another word of the same script
            j = rng.choice(by_kind[pieces[i][1]])
            if pieces[j][0] != pieces[i][0]:
                pieces[i][0], pieces[j][0] = pieces[j][0], pieces[i][0]
                break
    return _join(pieces)


def edit_delete(text: str, rng: random.Random, rate: float) -> str:
    pieces = split_words(text)
    positions = _word_positions(pieces)
    if len(positions) < 2:
        return text
    doomed = {i for i in positions if rng.random() < rate}
    if not doomed:
        doomed = {rng.choice(positions)}
    if len(doomed) == len(positions):
        doomed.discard(rng.choice(sorted(doomed)))
    for i in sorted(doomed, reverse=True):
        # A Latin word takes one neighbouring space with it, so no double space is left behind
        # (the one before it, unless that one is a line break).
        if pieces[i][1] == "word":
            if i > 0 and pieces[i - 1][1] == "space" and "\n" not in pieces[i - 1][0]:
                del pieces[i - 1:i + 1]
                continue
            if i + 1 < len(pieces) and pieces[i + 1][1] == "space":
                del pieces[i:i + 2]
                continue
        del pieces[i]
    return _join(pieces)


# A sentence ends after 。！？ (spaces optional), or after . ! ? and a space (not inside "3.5");
# never between two end marks or before a closing quote ("Really?!", 说："好。").
_SENTENCE_END = re.compile(r"(?<=[。！？!?])(?![。！？!?.…」』”’\"')）])\s*"
                           r"|(?<=[.])\s+|(?<=[.!?])(?=[\u3400-\u9fff])")
_ENDS = tuple(".!?。！？")


def edit_reorder(text: str, rng: random.Random, rate: float = 0.0) -> str:
    stripped = text.rstrip()
    tail = text[len(stripped):]
    cuts = [m for m in _SENTENCE_END.finditer(stripped) if 0 < m.start() < len(stripped)]
    if not cuts:
        return text
    sentences, separators, start = [], [], 0
    for m in cuts:
        sentences.append(stripped[start:m.start()])
        separators.append(m.group())
        start = m.end()
    sentences.append(stripped[start:])
    fixed = [] if sentences[-1].rstrip().endswith(_ENDS) else [sentences.pop()]
    if len(sentences) < 2:
        return text
    order = list(range(len(sentences)))
    rng.shuffle(order)
    if order == sorted(order):
        order = order[1:] + order[:1]
    moved = [sentences[i] for i in order] + fixed
    # Separators stay where they were; a sentence that ends without a space gets one before Latin text.
    out = moved[0]
    for sep, sentence in zip(separators, moved[1:]):
        if not sep and out[-1:].isascii() and sentence[:1].isascii():
            sep = " "
        out += sep + sentence
    return out + tail


def edit_substitute(text: str, rng: random.Random, substitutions: dict[str, list[str]]) -> str:
    if not substitutions:
        return text
    terms = sorted(substitutions, key=len, reverse=True)  # longest first: 咳嗽 before 咳
    parts = []
    for term in terms:
        escaped = re.escape(term)
        # Latin terms match whole words only ("cough" is not replaced inside "coughing").
        if term[:1].isascii() and term[:1].isalnum():
            escaped = r"(?<![A-Za-z0-9])" + escaped
        if term[-1:].isascii() and term[-1:].isalnum():
            escaped += r"(?![A-Za-z0-9])"
        parts.append(escaped)
    pattern = re.compile("|".join(parts))
    return pattern.sub(lambda m: rng.choice(substitutions[m.group()]), text)


def _editor(method: str, options: AugmentOptions):
    if method == "substitute":
        return lambda text, rng: edit_substitute(text, rng, options.substitutions)
    fn = {"synonym": edit_synonym, "insert": edit_insert, "swap": edit_swap, "delete": edit_delete,
          "reorder": edit_reorder}[method]
    return lambda text, rng: fn(text, rng, options.rate)


# ---- records ------------------------------------------------------------------------------------

def _texts(record: dict) -> tuple:
    texts = record_texts(record)
    rejected = tuple(m.get("content") or "" for m in record.get("rejected") or [])
    return texts + rejected


def _edit_record(record: dict, edit, rng: random.Random, part: str) -> dict:
    """`edit` applied to the record's texts of `part`; the system prompt is never edited (it sets
    the behaviour every row shares)."""
    system = {m.get("content") for m in record.get("prompt") or [] if m.get("role") == "system"}
    return map_record_text(record, lambda text: text if text in system else edit(text, rng), part=part)


def _copies(rng: random.Random, multiplier: float) -> int:
    whole = math.floor(multiplier)
    return whole + (rng.random() < multiplier - whole)


def augment(records: list[dict], options: AugmentOptions | dict | None = None) -> list[dict]:
    """The records, then the new rows (each tagged `_augmented`); see the module docstring."""
    if options is None or isinstance(options, dict):
        options = AugmentOptions.from_dict(options)
    options.check()
    records = list(records)
    if not options.methods or options.multiplier <= 0:
        return records
    editors = {m: _editor(m, options) for m in options.methods}
    added: list[dict] = []
    for index, record in enumerate(records):
        if record.get("_augmented"):
            continue
        # One generator per row: a row's copies do not depend on the rows before it.
        rng = random.Random(f"{options.seed}:{index}")
        seen = {_texts(record)}
        for _ in range(_copies(rng, options.multiplier)):
            # Methods in random order, a few rounds: an edit may change nothing or repeat a copy.
            tries = (m for _ in range(_ROUNDS) for m in rng.sample(options.methods, len(options.methods)))
            for method in tries:
                new = _edit_record(record, editors[method], rng, options.part)
                texts = _texts(new)
                if texts not in seen:
                    seen.add(texts)
                    new["_augmented"] = {"from": index, "ops": [method]}
                    added.append(new)
                    break
    return records + added


def augment_splits(splits: dict[str, list[dict]], options: AugmentOptions | dict | None) -> dict[str, list[dict]]:
    """The splits with "train" augmented; validation and test are returned untouched."""
    out = dict(splits)
    out["train"] = augment(splits.get("train") or [], options)
    return out


def remove_augmented(records: list[dict]) -> list[dict]:
    """Only the original rows (augmented ones carry `_augmented`)."""
    return [r for r in records if not r.get("_augmented")]


def count_augmented(records: list[dict]) -> int:
    return sum(1 for r in records if r.get("_augmented"))


def _shown(record: dict, other: dict) -> str:
    """The text to show for a row next to its pair: the prompt, plus the answer when it differs."""
    prompt, answer = record_texts(record)
    other_prompt, other_answer = record_texts(other)
    if "text" in record and "prompt" not in record:
        return answer
    if answer != other_answer:
        return f"{prompt}\n\n{answer}" if prompt != other_prompt else answer
    return prompt


def side_by_side(records: list[dict], n: int = 5) -> list[tuple[str, str]]:
    """(original text, augmented text) for the first `n` augmented rows, for the UI."""
    pairs = []
    for record in records:
        if len(pairs) >= n:
            break
        source = record.get("_augmented")
        if not source:
            continue
        index = source.get("from")
        if isinstance(index, int) and 0 <= index < len(records):
            original = records[index]
            pairs.append((_shown(original, record), _shown(record, original)))
    return pairs
