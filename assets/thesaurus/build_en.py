"""Build en_wordnet.tsv, the English synonym list of studio.augment, from Princeton WordNet 3.0.

    apt-get install wordnet-base          # Debian's WordNet 3.0 database (/usr/share/wordnet)
    python assets/thesaurus/build_en.py /usr/share/wordnet > assets/thesaurus/en_wordnet.tsv

Kept small (about 90 KB, ~4,000 headwords) on purpose: synonym replacement without a tagger
cannot tell which sense or part of speech a word has in a sentence, so only words that are
unambiguous enough make it in. A headword is kept when it is a plain lowercase word of 3+ letters
seen in WordNet's sense-tagged corpus (cntlist.rev) at least twice, one part of speech has at least
70% of its tagged uses, and its synonyms come from that part of speech's senses holding at least
30% of those uses; a synonym must itself be a plain word whose first three senses include the
shared one (so rare senses of the synonym do not leak in). Function words (studio.thesaurus's
STOPWORDS) are left out.

WordNet 3.0 Copyright 2006 by Princeton University; see LICENSE-WordNet.txt beside this file.
"""

import collections
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from studio.thesaurus import STOPWORDS  # noqa: E402

WORD = re.compile(r"^[a-z]{3,}$")
POS = {"1": "noun", "2": "verb", "3": "adj", "4": "adv", "5": "adj"}  # 5: adjective satellite


def read_index(folder: Path, pos: str) -> dict[str, list[str]]:
    """lemma -> synset offsets, most frequent sense first."""
    out = {}
    for line in open(folder / f"index.{pos}", encoding="latin-1"):
        if line.startswith("  "):  # the license header
            continue
        fields = line.split()
        rest = fields[4 + int(fields[3]):]
        out[fields[0]] = rest[2:]
    return out


def read_data(folder: Path, pos: str) -> dict[str, list[str]]:
    """synset offset -> its lemmas (lowercase, adjective markers such as '(a)' removed)."""
    out = {}
    for line in open(folder / f"data.{pos}", encoding="latin-1"):
        if line.startswith("  "):
            continue
        fields = line.split()
        count = int(fields[3], 16)
        out[fields[0]] = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]).lower() for i in range(count)]
    return out


def build(folder: Path) -> dict[str, list[str]]:
    uses = collections.defaultdict(lambda: collections.defaultdict(int))   # lemma -> pos -> count
    senses = collections.defaultdict(lambda: collections.defaultdict(int))  # (lemma, pos) -> sense no -> count
    for line in open(folder / "cntlist.rev", encoding="latin-1"):
        key, number, count = line.split()
        lemma, rest = key.split("%", 1)
        pos = POS[rest[0]]
        uses[lemma][pos] += int(count)
        senses[(lemma, pos)][int(number)] += int(count)
    index = {p: read_index(folder, p) for p in ("noun", "verb", "adj", "adv")}
    data = {p: read_data(folder, p) for p in ("noun", "verb", "adj", "adv")}
    table = {}
    for lemma, by_pos in sorted(uses.items()):
        if not WORD.match(lemma) or lemma in STOPWORDS:
            continue
        total = sum(by_pos.values())
        pos, count = max(by_pos.items(), key=lambda kv: (kv[1], kv[0]))
        offsets = index[pos].get(lemma)
        if total < 2 or count < 0.7 * total or not offsets:
            continue
        kept = [offsets[n - 1] for n, c in sorted(senses[(lemma, pos)].items())
                if n <= len(offsets) and c >= 0.3 * count]
        words = []
        for offset in kept:
            for word in data[pos][offset]:
                if (word != lemma and word not in words and WORD.match(word) and word not in STOPWORDS
                        and offset in index[pos].get(word, [])[:3] and uses.get(word, {}).get(pos)):
                    words.append(word)
        if words:
            table[lemma] = words
    return table


if __name__ == "__main__":
    table = build(Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/wordnet"))
    sys.stdout.write("# English synonyms from Princeton WordNet 3.0 (built by build_en.py; license: "
                     "LICENSE-WordNet.txt)\n")
    sys.stdout.write("".join(f"{word}\t{','.join(syns)}\n" for word, syns in table.items()))
