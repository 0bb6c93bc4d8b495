"""Build the embedded demo assets for Finetune Studio.

This script creates, from nothing but its own word lists and templates (no
third-party text, no network access), everything the studio's offline demo
needs:

* ``assets/data/demo_en.json``  - 600 English instruction examples (alpaca format:
  ``{"instruction", "input", "output"}``).
* ``assets/data/demo_zh.json``  - 600 Simplified Chinese instruction examples
  (alpaca format).
* ``assets/data/demo_dpo.json`` - 120 English preference pairs
  (``{"prompt", "chosen", "rejected"}``).
* ``assets/data/demo_examples.json`` - the questions the Chat tab suggests,
  ``{"en": [...], "zh": [...]}``; the datasets always contain them (and close
  variants), so a demo run answers them correctly.
* ``assets/model/``             - a tiny ``LlamaForCausalLM`` base model (~1.4M
  parameters, every dimension a multiple of 64, fp32 safetensors) with a byte-level BPE tokenizer trained here and a
  ChatML chat template. The model is *pretrained* here on a synthetic plain-prose
  corpus (English + Chinese) stating the same kinds of facts as the datasets, but
  never in question/answer or chat form. The untouched base therefore "knows" the
  facts yet does not answer chat prompts in the dataset's style; a short LoRA
  fine-tune on ``demo_en.json`` visibly changes its behaviour, which is exactly
  what the demo is meant to show.

Run from the repository root (CPU only, about 6 minutes on 2 cores):

    .venv/bin/python recipes/demo/build_demo_assets.py

With ``--data-only`` it rewrites only ``assets/data/`` (seconds): the datasets
and the corpus draw from separate seeded generators, so the model a full run
builds does not depend on the dataset recipe.

Every random choice is drawn from fixed seeds, and torch uses a fixed number of
threads, so re-running the script on the same machine reproduces the same files.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from pathlib import Path

# Pin the thread count before torch starts: CPU reductions are only
# bit-reproducible for a fixed number of threads.
NUM_THREADS = 2
os.environ.setdefault("OMP_NUM_THREADS", str(NUM_THREADS))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import (  # noqa: E402
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "assets" / "data"
MODEL_DIR = ROOT / "assets" / "model"

SEED = 20240601

# Model pretraining. A step takes ~0.17 s on 2 CPU cores (documents average ~51
# tokens), so pretraining takes ~5-6 minutes.
SEQ_LEN = 128  # longest training document, eos included
BATCH = 32  # documents per step
PRETRAIN_STEPS = 2000  # ~3.3 passes over the ~1M-token corpus
PEAK_LR = 3e-3
WARMUP = 100

# ---------------------------------------------------------------------------
# Special tokens and chat template
# ---------------------------------------------------------------------------
PAD = "<|pad|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END]  # -> ids 0, 1, 2

# ChatML. The assistant content *and* its closing <|im_end|> sit inside
# {% generation %} markers so TRL's assistant_only_loss trains the model to stop;
# the newline after <|im_end|> stays outside (it is never generated, because
# generation stops at <|im_end|>). The prompt rendered with add_generation_prompt
# is an exact prefix of prompt+completion, which TRL's prompt-completion masking
# relies on.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# ---------------------------------------------------------------------------
# Shared English word lists (facts used by both the datasets and the corpus)
# ---------------------------------------------------------------------------
NUM_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty",
]
TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty", 6: "sixty", 7: "seventy", 8: "eighty", 9: "ninety"}


def num_word(n: int) -> str:
    if n <= 20:
        return NUM_WORDS[n]
    if n == 100:
        return "one hundred"
    t, u = divmod(n, 10)
    return TENS[t] + ("" if u == 0 else "-" + NUM_WORDS[u])


# No word appears in two pairs, so "the opposite of X" has one answer.
EN_OPPOSITES = [
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("up", "down"), ("left", "right"),
    ("happy", "sad"), ("tall", "short"), ("day", "night"), ("open", "closed"), ("wet", "dry"),
    ("full", "empty"), ("early", "late"), ("near", "far"), ("hard", "soft"), ("thick", "thin"),
    ("heavy", "light"), ("old", "young"), ("rich", "poor"), ("loud", "quiet"), ("clean", "dirty"),
    ("strong", "weak"), ("black", "white"), ("in", "out"), ("push", "pull"), ("win", "lose"),
    ("buy", "sell"), ("give", "take"), ("first", "last"), ("good", "bad"), ("true", "false"),
    ("top", "bottom"), ("north", "south"), ("east", "west"), ("inside", "outside"),
    ("always", "never"), ("come", "go"), ("laugh", "cry"), ("begin", "end"), ("sweet", "sour"),
    ("wide", "narrow"),
]

# (noun phrase as it starts a sentence, bare noun, colour)
EN_COLOURS = [
    ("A banana", "banana", "yellow"), ("A lemon", "lemon", "yellow"), ("The sun", "sun", "yellow"),
    ("Grass", "grass", "green"), ("A leaf", "leaf", "green"), ("A frog", "frog", "green"),
    ("A cucumber", "cucumber", "green"), ("The sky", "sky", "blue"), ("The sea", "sea", "blue"),
    ("Snow", "snow", "white"), ("Milk", "milk", "white"), ("A cloud", "cloud", "white"),
    ("Coal", "coal", "black"), ("A crow", "crow", "black"), ("A tomato", "tomato", "red"),
    ("A strawberry", "strawberry", "red"), ("A cherry", "cherry", "red"), ("Blood", "blood", "red"),
    ("A carrot", "carrot", "orange"), ("A pumpkin", "pumpkin", "orange"), ("An orange", "orange", "orange"),
    ("Chocolate", "chocolate", "brown"), ("A grape", "grape", "purple"), ("A plum", "plum", "purple"),
    ("A flamingo", "flamingo", "pink"),
]

# (article + animal, sound)
EN_SOUNDS = [
    ("a dog", "woof"), ("a cat", "meow"), ("a cow", "moo"), ("a duck", "quack"), ("a sheep", "baa"),
    ("a pig", "oink"), ("a horse", "neigh"), ("an owl", "hoot"), ("a frog", "ribbit"), ("a bee", "buzz"),
    ("a lion", "roar"), ("a mouse", "squeak"), ("a snake", "hiss"), ("a goat", "maa"),
]

EN_PLURALS = [
    ("cat", "cats"), ("dog", "dogs"), ("book", "books"), ("car", "cars"), ("tree", "trees"),
    ("bird", "birds"), ("apple", "apples"), ("cup", "cups"), ("hat", "hats"), ("pen", "pens"),
    ("door", "doors"), ("girl", "girls"), ("boy", "boys"), ("house", "houses"), ("star", "stars"),
    ("box", "boxes"), ("bus", "buses"), ("fox", "foxes"), ("dish", "dishes"), ("watch", "watches"),
    ("glass", "glasses"), ("brush", "brushes"), ("baby", "babies"), ("city", "cities"),
    ("party", "parties"), ("story", "stories"), ("cherry", "cherries"), ("leaf", "leaves"),
    ("knife", "knives"), ("wolf", "wolves"), ("half", "halves"), ("child", "children"), ("man", "men"),
    ("woman", "women"), ("mouse", "mice"), ("foot", "feet"), ("tooth", "teeth"), ("goose", "geese"),
    ("person", "people"), ("sheep", "sheep"), ("fish", "fish"), ("potato", "potatoes"),
    ("tomato", "tomatoes"), ("toy", "toys"), ("key", "keys"), ("day", "days"),
]

EN_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
EN_MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]
# Largest first.
EN_ANIMAL_SIZES = [
    ("a whale", "whale"), ("an elephant", "elephant"), ("a horse", "horse"), ("a cow", "cow"),
    ("a lion", "lion"), ("a dog", "dog"), ("a cat", "cat"), ("a rabbit", "rabbit"),
    ("a mouse", "mouse"), ("an ant", "ant"),
]


def cap(s: str) -> str:
    return s[0].upper() + s[1:]


# ---------------------------------------------------------------------------
# Shared Chinese word lists
# ---------------------------------------------------------------------------
ZH_DIGITS = "零一二三四五六七八九十"


def zh_num(n: int) -> str:
    """Chinese numeral for 0..99."""
    if n <= 10:
        return ZH_DIGITS[n]
    t, u = divmod(n, 10)
    head = "十" if t == 1 else ZH_DIGITS[t] + "十"
    return head + ("" if u == 0 else ZH_DIGITS[u])


ZH_OPPOSITES = [
    ("热", "冷"), ("大", "小"), ("快", "慢"), ("上", "下"), ("左", "右"), ("高", "矮"), ("长", "短"),
    ("多", "少"), ("前", "后"), ("黑", "白"), ("新", "旧"), ("好", "坏"), ("早", "晚"), ("远", "近"),
    ("胖", "瘦"), ("轻", "重"), ("开", "关"), ("来", "去"), ("买", "卖"), ("哭", "笑"), ("真", "假"),
    ("深", "浅"), ("干", "湿"), ("厚", "薄"), ("内", "外"), ("进", "出"), ("东", "西"), ("南", "北"),
    ("男", "女"), ("输", "赢"), ("对", "错"), ("甜", "苦"), ("强", "弱"), ("美", "丑"), ("软", "硬"),
    ("宽", "窄"), ("明", "暗"), ("动", "静"),
]
ZH_COLOURS = [
    ("香蕉", "黄色"), ("柠檬", "黄色"), ("太阳", "红色"), ("草", "绿色"), ("树叶", "绿色"), ("青蛙", "绿色"),
    ("黄瓜", "绿色"), ("天空", "蓝色"), ("大海", "蓝色"), ("雪", "白色"), ("牛奶", "白色"), ("白云", "白色"),
    ("煤", "黑色"), ("乌鸦", "黑色"), ("番茄", "红色"), ("草莓", "红色"), ("樱桃", "红色"), ("胡萝卜", "橙色"),
    ("南瓜", "橙色"), ("橙子", "橙色"), ("巧克力", "棕色"), ("葡萄", "紫色"), ("茄子", "紫色"), ("火", "红色"),
]
ZH_SOUNDS = [
    ("狗", "汪汪"), ("猫", "喵喵"), ("牛", "哞哞"), ("鸭子", "嘎嘎"), ("羊", "咩咩"), ("猪", "哼哼"),
    ("青蛙", "呱呱"), ("小鸟", "叽叽"), ("老鼠", "吱吱"), ("公鸡", "喔喔"), ("蜜蜂", "嗡嗡"), ("狼", "嗷嗷"),
]
ZH_DAYS = ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"]
ZH_MONTHS = [zh_num(i) + "月" for i in range(1, 13)]
ZH_ANIMAL_SIZES = ["鲸鱼", "大象", "马", "牛", "狮子", "狗", "猫", "兔子", "老鼠", "蚂蚁"]  # largest first


# ---------------------------------------------------------------------------
# Instruction datasets (alpaca format)
# ---------------------------------------------------------------------------
def ex(instruction: str, output: str, inp: str = "") -> dict:
    return {"instruction": instruction, "input": inp, "output": output}


def en_families() -> dict[str, list[dict]]:
    """All candidate English examples, grouped by task family.

    Each family has one fixed answer template that mirrors the question, so a
    small model can learn the format quickly and ROUGE-L rewards it.
    Some families also have an `input`-field variant.
    """
    f: dict[str, list[dict]] = {k: [] for k in (
        "add", "sub", "mul", "opp", "colour", "sound", "plural", "calendar", "count", "cmp_num", "cmp_animal")}
    for a in range(0, 13):
        for b in range(0, 13):
            out = f"{a} plus {b} is {a + b}."
            f["add"].append(ex(f"What is {a} plus {b}?", out))
            f["add"].append(ex("Add the two numbers.", out, f"{a} and {b}"))
    for a in range(1, 16):
        for b in range(0, a + 1):
            out = f"{a} minus {b} is {a - b}."
            f["sub"].append(ex(f"What is {a} minus {b}?", out))
            f["sub"].append(ex("Subtract the second number from the first.", out, f"{a} and {b}"))
    for a in range(2, 10):
        for b in range(2, 10):
            out = f"{a} times {b} is {a * b}."
            f["mul"].append(ex(f"What is {a} times {b}?", out))
            f["mul"].append(ex("Multiply the two numbers.", out, f"{a} and {b}"))
    for x, y in EN_OPPOSITES:
        for w, o in ((x, y), (y, x)):
            out = f"The opposite of {w} is {o}."
            f["opp"].append(ex(f"What is the opposite of {w}?", out))
            f["opp"].append(ex("Give the opposite of this word.", out, w))
    for phrase, noun, colour in EN_COLOURS:
        out = f"{phrase} is {colour}."
        f["colour"].append(ex(f"What colour is {phrase[0].lower() + phrase[1:]}?", out))
        f["colour"].append(ex("Name the colour of this thing.", out, noun))
    for animal, sound in EN_SOUNDS:
        out = f"{cap(animal)} says {sound}."
        f["sound"].append(ex(f"What sound does {animal} make?", out))
        f["sound"].append(ex(f"What does {animal} say?", out))
        f["sound"].append(ex("Write the sound this animal makes.", out, animal.split()[1]))
    for w, p in EN_PLURALS:
        out = f"The plural of {w} is {p}."
        f["plural"].append(ex(f"What is the plural of {w}?", out))
        f["plural"].append(ex("Write the plural of this word.", out, w))
    for kind, seq in (("day", EN_DAYS), ("month", EN_MONTHS)):
        for i, d in enumerate(seq):
            nxt, prv = seq[(i + 1) % len(seq)], seq[i - 1]
            f["calendar"].append(ex(f"What {kind} comes after {d}?", f"The {kind} after {d} is {nxt}."))
            f["calendar"].append(ex(f"What {kind} comes before {d}?", f"The {kind} before {d} is {prv}."))
    for n in range(0, 100):
        f["count"].append(ex(f"What number comes after {n}?", f"The number after {n} is {n + 1}."))
        f["count"].append(ex("Give the next number.", f"The number after {n} is {n + 1}.", str(n)))
        if n > 0:
            f["count"].append(ex(f"What number comes before {n}?", f"The number before {n} is {n - 1}."))
    for a in range(0, 21):
        for b in range(0, 21):
            if a == b:
                continue
            hi, lo = max(a, b), min(a, b)
            f["cmp_num"].append(ex(f"Which is bigger, {a} or {b}?", f"{hi} is bigger than {lo}."))
            f["cmp_num"].append(ex(f"Which is smaller, {a} or {b}?", f"{lo} is smaller than {hi}."))
            f["cmp_num"].append(ex("Pick the bigger number.", f"{hi} is bigger than {lo}.", f"{a} and {b}"))
    for i, (a, _) in enumerate(EN_ANIMAL_SIZES):
        for j, (b, _) in enumerate(EN_ANIMAL_SIZES):
            if i == j:
                continue
            big, small = (a, b) if i < j else (b, a)
            f["cmp_animal"].append(ex(f"Which is bigger, {a} or {b}?", f"{cap(big)} is bigger than {small}."))
            f["cmp_animal"].append(ex(f"Which is smaller, {a} or {b}?", f"{cap(small)} is smaller than {big}."))
    return f


EN_QUOTAS = {
    "add": 90, "sub": 60, "mul": 45, "opp": 70, "colour": 45, "sound": 35, "plural": 70,
    "calendar": 38, "count": 60, "cmp_num": 50, "cmp_animal": 37,
}


def zh_families() -> dict[str, list[dict]]:
    f: dict[str, list[dict]] = {k: [] for k in (
        "add", "sub", "mul", "opp", "colour", "sound", "calendar", "count", "cmp_num", "cmp_animal")}
    for a in range(0, 13):
        for b in range(0, 13):
            out = f"{a}加{b}等于{a + b}。"
            f["add"].append(ex(f"{a}加{b}等于几？", out))
            f["add"].append(ex("计算两个数的和。", out, f"{a}和{b}"))
    for a in range(1, 16):
        for b in range(0, a + 1):
            out = f"{a}减{b}等于{a - b}。"
            f["sub"].append(ex(f"{a}减{b}等于几？", out))
            f["sub"].append(ex("用第一个数减去第二个数。", out, f"{a}和{b}"))
    for a in range(2, 10):
        for b in range(2, 10):
            out = f"{a}乘{b}等于{a * b}。"
            f["mul"].append(ex(f"{a}乘{b}等于几？", out))
            f["mul"].append(ex("计算两个数的积。", out, f"{a}和{b}"))
    for x, y in ZH_OPPOSITES:
        for w, o in ((x, y), (y, x)):
            out = f"{w}的反义词是{o}。"
            f["opp"].append(ex(f"{w}的反义词是什么？", out))
            f["opp"].append(ex("写出这个词的反义词。", out, w))
    for thing, colour in ZH_COLOURS:
        out = f"{thing}是{colour}的。"
        f["colour"].append(ex(f"{thing}是什么颜色的？", out))
        f["colour"].append(ex("说出这个东西的颜色。", out, thing))
    for animal, sound in ZH_SOUNDS:
        f["sound"].append(ex(f"{animal}是怎么叫的？", f"{animal}是{sound}叫的。"))
        f["sound"].append(ex(f"{animal}的叫声是什么？", f"{animal}的叫声是{sound}。"))
        f["sound"].append(ex("写出这种动物的叫声。", f"{animal}的叫声是{sound}。", animal))
    for i, d in enumerate(ZH_DAYS):
        nxt, prv = ZH_DAYS[(i + 1) % 7], ZH_DAYS[i - 1]
        f["calendar"].append(ex(f"{d}的后一天是星期几？", f"{d}的后一天是{nxt}。"))
        f["calendar"].append(ex(f"{d}的前一天是星期几？", f"{d}的前一天是{prv}。"))
    for i, m in enumerate(ZH_MONTHS):
        nxt, prv = ZH_MONTHS[(i + 1) % 12], ZH_MONTHS[i - 1]
        f["calendar"].append(ex(f"{m}的下一个月是几月？", f"{m}的下一个月是{nxt}。"))
        f["calendar"].append(ex(f"{m}的上一个月是几月？", f"{m}的上一个月是{prv}。"))
    for n in range(0, 100):
        f["count"].append(ex(f"{n}后面的数是几？", f"{n}后面的数是{n + 1}。"))
        f["count"].append(ex("写出下一个数。", f"{n}后面的数是{n + 1}。", str(n)))
        if n > 0:
            f["count"].append(ex(f"{n}前面的数是几？", f"{n}前面的数是{n - 1}。"))
    for a in range(0, 21):
        for b in range(0, 21):
            if a == b:
                continue
            hi, lo = max(a, b), min(a, b)
            f["cmp_num"].append(ex(f"{a}和{b}哪个大？", f"{hi}比{lo}大。"))
            f["cmp_num"].append(ex(f"{a}和{b}哪个小？", f"{lo}比{hi}小。"))
            f["cmp_num"].append(ex("找出比较大的数。", f"{hi}比{lo}大。", f"{a}和{b}"))
    for i, a in enumerate(ZH_ANIMAL_SIZES):
        for j, b in enumerate(ZH_ANIMAL_SIZES):
            if i == j:
                continue
            big, small = (a, b) if i < j else (b, a)
            f["cmp_animal"].append(ex(f"{a}和{b}哪个大？", f"{big}比{small}大。"))
            f["cmp_animal"].append(ex(f"{a}和{b}哪个小？", f"{small}比{big}小。"))
    return f


ZH_QUOTAS = {
    "add": 100, "sub": 70, "mul": 50, "opp": 70, "colour": 45, "sound": 36, "calendar": 38,
    "count": 70, "cmp_num": 70, "cmp_animal": 51,
}


# The questions the Chat tab suggests (written to assets/data/demo_examples.json), each with the
# (instruction, input) rows of the dataset that teach its fact: the question itself and two
# neighbours, so the fact is still trained on when a run's validation/test split takes one or two.
# Facts to look up, not sums: the tiny model recalls a fact it was taught, but gets a held-out sum
# wrong now and then ("2 plus 3 is 6."). Chinese colours are left out too: their answers end in
# merged tokens such as "是黄色的" that a LoRA run does not learn to produce reliably, and so are
# the days ("星期一的后一天…" came out garbled in one of two runs). The Chinese question words
# (什么, 怎么, ？) are byte fragments to this tokenizer, trained on a corpus without questions.
EN_EXAMPLES = {
    "What is the opposite of hot?": [
        ("What is the opposite of hot?", ""), ("Give the opposite of this word.", "hot"),
        ("What is the opposite of cold?", "")],
    "What colour is a banana?": [
        ("What colour is a banana?", ""), ("Name the colour of this thing.", "banana"),
        ("What colour is a lemon?", "")],
    "What sound does a cow make?": [
        ("What sound does a cow make?", ""), ("What does a cow say?", ""),
        ("Write the sound this animal makes.", "cow")],
    "What is the plural of mouse?": [
        ("What is the plural of mouse?", ""), ("Write the plural of this word.", "mouse"),
        ("What is the plural of goose?", "")],
    "What day comes after Monday?": [
        ("What day comes after Monday?", ""), ("What day comes before Tuesday?", ""),
        ("What day comes after Sunday?", "")],
}
ZH_EXAMPLES = {
    "热的反义词是什么？": [("热的反义词是什么？", ""), ("写出这个词的反义词。", "热"), ("冷的反义词是什么？", "")],
    "牛是怎么叫的？": [("牛是怎么叫的？", ""), ("牛的叫声是什么？", ""), ("写出这种动物的叫声。", "牛")],
}


def sample_dataset(families: dict[str, list[dict]], quotas: dict[str, int], rng: random.Random,
                   required: dict[str, list[tuple[str, str]]] | None = None) -> list[dict]:
    """`quotas[family]` rows from each family; the `required` (instruction, input) rows are
    always among them (they count towards their family's quota)."""
    must = {key for keys in (required or {}).values() for key in keys}
    rows: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for name, quota in quotas.items():
        pool = families[name]
        # Deduplicate on (instruction, input): one question never has two answers.
        uniq = {}
        for r in pool:
            uniq.setdefault((r["instruction"], r["input"]), r)
        pool = list(uniq.values())
        rng.shuffle(pool)
        pool.sort(key=lambda r: (r["instruction"], r["input"]) not in must)  # stable: required first
        taken = 0
        for r in pool:
            key = (r["instruction"], r["input"])
            if key in seen:
                continue
            seen.add(key)
            rows.append(r)
            taken += 1
            if taken == quota:
                break
        assert taken == quota, f"family {name}: only {taken} of {quota} examples available"
    missing = must - {(r["instruction"], r["input"]) for r in rows}
    assert not missing, f"example rows not in the data: {sorted(missing)}"
    rng.shuffle(rows)  # interleave families
    return rows


def build_dpo(rng: random.Random, n: int = 120) -> list[dict]:
    """English preference pairs: chosen = correct, well-formed answer;
    rejected = a wrong answer in the same template, or a sloppy/unhelpful one."""
    cands: list[tuple[str, str, str, str]] = []  # (family, prompt, chosen, rejected)

    def sloppy(correct_short: str) -> str:
        return rng.choice([
            f"{correct_short.lower()} i think",
            f"hmm maybe {correct_short.lower()}",
            "I don't know.",
            "idk",
            f"{correct_short.lower()}??",
            "That is a hard question, you should ask someone else.",
        ])

    for a in range(0, 13):
        for b in range(0, 13):
            s = a + b
            wrong = s + rng.choice([-2, -1, 1, 2]) if s > 1 else s + rng.choice([1, 2])
            cands.append(("add", f"What is {a} plus {b}?", f"{a} plus {b} is {s}.",
                          f"{a} plus {b} is {wrong}." if rng.random() < 0.7 else sloppy(str(s))))
    for a in range(2, 10):
        for b in range(2, 10):
            p = a * b
            wrong = p + rng.choice([-3, -1, 1, 2, a])
            cands.append(("mul", f"What is {a} times {b}?", f"{a} times {b} is {p}.",
                          f"{a} times {b} is {wrong}." if rng.random() < 0.7 else sloppy(str(p))))
    opp_words = [w for pair in EN_OPPOSITES for w in pair]
    for x, y in EN_OPPOSITES:
        for w, o in ((x, y), (y, x)):
            bad = rng.choice([v for v in opp_words if v not in (w, o)])
            cands.append(("opp", f"What is the opposite of {w}?", f"The opposite of {w} is {o}.",
                          f"The opposite of {w} is {bad}." if rng.random() < 0.6 else sloppy(o)))
    colours = sorted({c for _, _, c in EN_COLOURS})
    for phrase, _, colour in EN_COLOURS:
        bad = rng.choice([c for c in colours if c != colour])
        cands.append(("colour", f"What colour is {phrase[0].lower() + phrase[1:]}?", f"{phrase} is {colour}.",
                      f"{phrase} is {bad}." if rng.random() < 0.6 else sloppy(colour)))
    for animal, sound in EN_SOUNDS:
        bad = rng.choice([s for _, s in EN_SOUNDS if s != sound])
        cands.append(("sound", f"What sound does {animal} make?", f"{cap(animal)} says {sound}.",
                      f"{cap(animal)} says {bad}." if rng.random() < 0.6 else sloppy(sound)))
    for w, p in EN_PLURALS:
        naive = w + "s"
        bad = naive if naive != p else w + "es"
        cands.append(("plural", f"What is the plural of {w}?", f"The plural of {w} is {p}.",
                      f"The plural of {w} is {bad}." if rng.random() < 0.7 else sloppy(p)))
    for i, d in enumerate(EN_DAYS):
        nxt = EN_DAYS[(i + 1) % 7]
        bad = EN_DAYS[(i + 2) % 7]
        cands.append(("calendar", f"What day comes after {d}?", f"The day after {d} is {nxt}.",
                      f"The day after {d} is {bad}."))
    rng.shuffle(cands)
    # Keep the families balanced: round-robin over families until n pairs.
    by_fam: dict[str, list] = {}
    for c in cands:
        by_fam.setdefault(c[0], []).append(c)
    out, seen = [], set()
    while len(out) < n:
        for fam in sorted(by_fam):
            if by_fam[fam] and len(out) < n:
                _, prompt, chosen, rejected = by_fam[fam].pop()
                if prompt not in seen:
                    seen.add(prompt)
                    out.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    rng.shuffle(out)
    return out


# ---------------------------------------------------------------------------
# Plain-prose pretraining corpus
# ---------------------------------------------------------------------------
# The corpus states the same facts as the datasets, in varied statement
# phrasing, mixed with tiny stories. It deliberately contains no questions, no
# chat markup and (as far as practical) not the datasets' exact answer
# sentences: the base model should know *that* bananas are yellow, but not
# answer "What colour is a banana?" with "A banana is yellow."
EN_NAMES = [("Tom", "he"), ("Anna", "she"), ("Ben", "he"), ("Lily", "she"), ("Sam", "he"), ("Mia", "she"),
            ("Max", "he"), ("Emma", "she"), ("Leo", "he"), ("Zoe", "she")]
EN_OBJECTS = ["ball", "kite", "hat", "box", "book", "cup", "bike", "boat", "coat", "bag"]
EN_PLACES = ["park", "garden", "kitchen", "forest", "school", "river", "farm", "market", "beach", "library"]
EN_ACTIVITIES = [("play", "played"), ("read", "read"), ("run", "ran"), ("sing", "sang"), ("draw", "drew"),
                 ("swim", "swam"), ("dance", "danced"), ("walk", "walked"), ("cook", "cooked"), ("paint", "painted")]
EN_GIFTS = ["a banana", "a lemon", "a tomato", "a strawberry", "a cherry", "a carrot", "a pumpkin",
            "an orange", "a grape", "a plum", "a cucumber"]
EN_FEELINGS = ["happy", "tired", "hungry", "glad", "sleepy", "proud", "excited", "calm"]
EN_WEATHER = ["sunny", "rainy", "windy", "cold", "warm", "cloudy", "snowy", "bright"]


def en_fact_phrasings(rng: random.Random) -> list[str]:
    """All phrasings of one random fact (the caller picks one or two)."""
    kind = rng.choice(["add", "add", "sub", "mul", "opp", "opp", "colour", "sound", "plural", "plural",
                       "calendar", "count", "cmp_num", "cmp_animal"])
    w = num_word

    def n(x: int) -> str:  # digits or words, so both forms are learned
        return str(x) if rng.random() < 0.6 else w(x)

    if kind == "add":
        a, b = rng.randint(0, 12), rng.randint(0, 12)
        s = a + b
        return ([
            f"{cap(n(a))} and {n(b)} make {n(s)}.",
            f"Adding {n(a)} and {n(b)} gives {n(s)}.",
            f"If you put {n(a)} apples with {n(b)} more apples, you have {n(s)} apples.",
            f"{cap(n(s))} is {n(b)} more than {n(a)}.",
            f"Together, {n(a)} and {n(b)} come to {n(s)}.",
            f"{cap(n(a))} plus {n(b)} equals {n(s)}.",
        ])
    if kind == "sub":
        a = rng.randint(1, 15)
        b = rng.randint(0, a)
        d = a - b
        return ([
            f"Take {n(b)} away from {n(a)} and {n(d)} is left.",
            f"If you have {n(a)} sweets and eat {n(b)}, then {n(d)} sweets remain.",
            f"{cap(n(d))} is {n(b)} less than {n(a)}.",
            f"{cap(n(a))} minus {n(b)} leaves {n(d)}.",
        ])
    if kind == "mul":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        p = a * b
        return ([
            f"{cap(n(a))} groups of {n(b)} make {n(p)}.",
            f"Multiply {n(a)} by {n(b)} and you get {n(p)}.",
            f"{cap(n(a))} times {n(b)} equals {n(p)}.",
            f"There are {n(p)} legs on {n(a)} animals with {n(b)} legs each.",
        ])
    if kind == "opp":
        x, y = rng.choice(EN_OPPOSITES)
        if rng.random() < 0.5:
            x, y = y, x
        return ([
            f"{cap(x)} and {y} are opposites.",
            f"The words {x} and {y} mean opposite things.",
            f"{cap(y)} is the reverse of {x}.",
            f"We learn opposite words in pairs, like {x} and {y}.",
        ])
    if kind == "colour":
        phrase, noun, colour = rng.choice(EN_COLOURS)
        return ([
            f"The colour of {phrase[0].lower() + phrase[1:]} is {colour}.",
            f"{cap(colour)} is the colour of {phrase[0].lower() + phrase[1:]}.",
            f"When you look at {noun}, you see the colour {colour}.",
            f"Children often paint {noun} {colour}.",
        ])
    if kind == "sound":
        animal, sound = rng.choice(EN_SOUNDS)
        return ([
            f"The {animal.split()[1]} goes {sound}.",
            f"You can hear {animal} go {sound}, {sound}.",
            f"\"{cap(sound)}!\" went the {animal.split()[1]}.",
            f"On the farm, {animal} makes a {sound} sound.",
        ])
    if kind == "plural":
        s, p = rng.choice(EN_PLURALS)
        return ([
            f"One {s}, two {p}.",
            f"There is one {s} here and there are many {p} there.",
            f"We say {p} when there is more than one {s}.",
            f"I saw a {s}, and then I saw three {p}.",
            f"For more than one {s}, use the plural word {p}.",
        ])
    if kind == "calendar":
        seq = EN_DAYS if rng.random() < 0.5 else EN_MONTHS
        i = rng.randrange(len(seq))
        a, b = seq[i], seq[(i + 1) % len(seq)]
        return ([
            f"{a} is followed by {b}.",
            f"After {a} comes {b}.",
            f"{b} comes right after {a}.",
            f"First it is {a}, and then it is {b}.",
            f"{a} comes just before {b}.",
        ])
    if kind == "count":
        start = rng.randint(0, 95)
        k = rng.randint(3, 6)
        nums = list(range(start, start + k))
        return ([
            ", ".join(str(v) for v in nums) + ".",
            cap(", ".join(w(v) for v in nums)) + ".",
            f"When we count, {nums[1]} follows {nums[0]}.",
            f"We count {nums[0]} just before we count {nums[1]}.",
            f"{cap(w(nums[0]))} is one less than {w(nums[1])}.",
        ])
    if kind == "cmp_num":
        a, b = rng.sample(range(0, 21), 2)
        hi, lo = max(a, b), min(a, b)
        return ([
            f"{cap(n(hi))} is more than {n(lo)}.",
            f"{cap(n(lo))} is less than {n(hi)}.",
            f"{cap(n(hi))} is a larger number than {n(lo)}.",
        ])
    i, j = sorted(rng.sample(range(len(EN_ANIMAL_SIZES)), 2))
    big, small = EN_ANIMAL_SIZES[i][0], EN_ANIMAL_SIZES[j][0]
    return ([
        f"{cap(big)} is much larger than {small}.",
        f"Next to {big}, {small} looks tiny.",
        f"{cap(small)} is little compared with {big}.",
    ])


def invented_name(rng: random.Random) -> str:
    """A made-up name like "Bami" or "Tolek". The model cannot know it, so the
    only way to predict its later mentions is to copy it from earlier in the
    text: this trains the in-context copying ("induction") that a fine-tuned
    model needs to echo the words of a question in its answer."""
    cons, vows = "bdfgklmnprstvz", "aeiou"
    syl = [rng.choice(cons) + rng.choice(vows) for _ in range(rng.randint(2, 3))]
    if rng.random() < 0.3:
        syl.append(rng.choice(cons))
    return cap("".join(syl))


def en_story(rng: random.Random) -> list[str]:
    (name, pron), (name2, _) = rng.sample(EN_NAMES, 2)
    if rng.random() < 0.5:
        name = invented_name(rng)
    if rng.random() < 0.5:
        name2 = invented_name(rng)
    obj, place = rng.choice(EN_OBJECTS), rng.choice(EN_PLACES)
    act, act_past = rng.choice(EN_ACTIVITIES)
    _, _, colour = rng.choice(EN_COLOURS)
    gift = rng.choice(EN_GIFTS)
    animal, sound = rng.choice(EN_SOUNDS)
    day = rng.choice(EN_DAYS)
    pool = [
        f"{name} has a {colour} {obj}.",
        f"{cap(pron)} likes to {act} in the {place}.",
        f"It was a {rng.choice(EN_WEATHER)} day.",
        f"On {day}, {name} and {name2} went to the {place}.",
        f"They {act_past} until it was dark.",
        f"{name} took the {colour} {obj} to the {place}.",
        f"In the {place}, {name} saw {animal}.",
        f"The {animal.split()[1]} said {sound}.",
        f"{name} was very {rng.choice(EN_FEELINGS)}.",
        f"The {obj} of {name2} is {rng.choice(['bigger', 'smaller'])} than the {obj} of {name}.",
        f"{name2} gave {name} {gift}.",
        f"Then {pron} went home and ate dinner.",
        f"This is the {obj} of {name}, and {name} likes it a lot.",
        f"\"Give the {obj} to {name2},\" said {name}.",
        f"{name} can write the word {obj}.",
        f"What a {rng.choice(EN_WEATHER)} day it was for {name}!",
        f"{name2} asked the assistant in the {place} for a {obj}.",
        f"{name} is a happy user of the {place}.",
    ]
    # Always start with the sentence that introduces the character, keep story order.
    idx = [0] + sorted(rng.sample(range(1, len(pool)), rng.randint(2, 5)))
    return [pool[i] for i in idx]


ZH_NAMES = ["小明", "小红", "小华", "小丽", "小刚", "小美", "大伟", "丽丽", "小军", "小云"]
ZH_OBJECTS = ["球", "风筝", "帽子", "盒子", "书", "杯子", "自行车", "小船", "书包", "铅笔"]
ZH_PLACES = ["公园", "花园", "厨房", "森林", "学校", "河边", "农场", "市场", "海边", "图书馆"]
ZH_ACTIVITIES = ["玩", "看书", "跑步", "唱歌", "画画", "游泳", "跳舞", "散步", "做饭", "写字"]
ZH_GIFTS = ["香蕉", "柠檬", "番茄", "草莓", "樱桃", "胡萝卜", "南瓜", "橙子", "黄瓜"]
ZH_FEELINGS = ["开心", "累", "饿", "高兴", "困", "骄傲", "兴奋", "安静"]
ZH_WEATHER = ["晴天", "雨天", "大风天", "阴天", "雪天"]


def zh_fact_phrasings(rng: random.Random) -> list[str]:
    kind = rng.choice(["add", "add", "sub", "mul", "opp", "opp", "colour", "sound", "calendar", "count",
                       "cmp_num", "cmp_animal"])

    def n(x: int) -> str:
        return str(x) if rng.random() < 0.6 else zh_num(x)

    def cnt(x: int) -> str:  # a number before a measure word: 两个, not 二个
        return "两" if x == 2 and rng.random() >= 0.6 else n(x)

    if kind == "add":
        a, b = rng.randint(0, 12), rng.randint(0, 12)
        s = a + b
        return ([
            f"{n(a)}和{n(b)}合起来是{n(s)}。",
            f"{n(a)}加上{n(b)}得{n(s)}。",
            f"把{cnt(a)}个苹果和{cnt(b)}个苹果放在一起，一共有{cnt(s)}个苹果。",
            f"{n(s)}比{n(a)}多{n(b)}。",
            f"{n(a)}加{n(b)}等于{n(s)}。",
        ])
    if kind == "sub":
        a = rng.randint(1, 15)
        b = rng.randint(0, a)
        d = a - b
        return ([
            f"{n(a)}减去{n(b)}还剩{n(d)}。",
            f"从{cnt(a)}块糖里拿走{cnt(b)}块，还剩下{cnt(d)}块。",
            f"{n(d)}比{n(a)}少{n(b)}。",
            f"{n(a)}减{n(b)}等于{n(d)}。",
        ])
    if kind == "mul":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        p = a * b
        return ([
            f"{cnt(a)}个{n(b)}是{n(p)}。",
            f"{n(a)}乘以{n(b)}得{n(p)}。",
            f"{n(a)}乘{n(b)}等于{n(p)}。",
            f"{zh_num(a)}{zh_num(b)}得{zh_num(p)}。" if a <= b else f"{cnt(b)}个{n(a)}也是{n(p)}。",
        ])
    if kind == "opp":
        x, y = rng.choice(ZH_OPPOSITES)
        if rng.random() < 0.5:
            x, y = y, x
        return ([
            f"{x}和{y}意思相反。",
            f"“{x}”和“{y}”是一对反义词。",
            f"{y}的意思跟{x}正好相反。",
            f"我们学反义词的时候，会把{x}和{y}放在一起学。",
        ])
    if kind == "colour":
        thing, colour = rng.choice(ZH_COLOURS)
        return ([
            f"{thing}的颜色是{colour}。",
            f"{colour}的{thing}很常见。",
            f"小朋友画{thing}的时候常常用{colour}。",
            f"我们看到的{thing}是{colour}的，颜色很好看。",
        ])
    if kind == "sound":
        animal, sound = rng.choice(ZH_SOUNDS)
        return ([
            f"{animal}会{sound}地叫。",
            f"我听到{animal}在叫：{sound}，{sound}。",
            f"农场里的{animal}发出{sound}的声音。",
            f"{animal}的叫声听起来像“{sound}”。",
        ])
    if kind == "calendar":
        days = rng.random() < 0.5
        seq = ZH_DAYS if days else ZH_MONTHS
        i = rng.randrange(len(seq))
        a, b = seq[i], seq[(i + 1) % len(seq)]
        return ([
            f"{a}过了就是{b}。",
            f"{b}紧跟在{a}后面。",
            f"先是{a}，然后是{b}。",
            f"{a}过去以后，第二天就是{b}。" if days else f"过完{a}，下一个月就是{b}。",
        ])
    if kind == "count":
        start = rng.randint(0, 95)
        k = rng.randint(3, 6)
        nums = list(range(start, start + k))
        return ([
            "，".join(str(v) for v in nums) + "。",
            "、".join(zh_num(v) for v in nums) + "。",
            f"数完{nums[0]}就数{nums[1]}。",
            f"数到{nums[0]}，接下来的数就是{nums[1]}。",
        ])
    if kind == "cmp_num":
        a, b = rng.sample(range(0, 21), 2)
        hi, lo = max(a, b), min(a, b)
        return ([f"{n(hi)}大于{n(lo)}。", f"{n(lo)}小于{n(hi)}。", f"{n(hi)}是比{n(lo)}更大的数。"])
    i, j = sorted(rng.sample(range(len(ZH_ANIMAL_SIZES)), 2))
    big, small = ZH_ANIMAL_SIZES[i], ZH_ANIMAL_SIZES[j]
    return ([f"和{big}相比，{small}显得很小。", f"{big}的个子比{small}大得多。", f"{small}站在{big}旁边，看起来小小的。"])


ZH_NAME_CHARS = "芳龙娜涛婷杰萍强燕斌霞磊静鹏玲浩琳超颖航雪峰晨阳欣宇佳轩梅亮"


def zh_story(rng: random.Random) -> list[str]:
    name, name2 = rng.sample(ZH_NAMES, 2)
    # Invented names, as in en_story, to train copying from context.
    if rng.random() < 0.5:
        name = rng.choice("小阿") + rng.choice(ZH_NAME_CHARS)
    if rng.random() < 0.5:
        name2 = "".join(rng.sample(ZH_NAME_CHARS, 2))
    obj, place, act = rng.choice(ZH_OBJECTS), rng.choice(ZH_PLACES), rng.choice(ZH_ACTIVITIES)
    _, colour = rng.choice(ZH_COLOURS)
    gift = rng.choice(ZH_GIFTS)
    animal, sound = rng.choice(ZH_SOUNDS)
    pool = [
        f"{name}有一个{colour}的{obj}。",
        f"{name}喜欢在{place}{act}。",
        f"今天是{rng.choice(ZH_WEATHER)}。",
        f"{rng.choice(ZH_DAYS)}，{name}和{name2}一起去了{place}。",
        f"他们在那里{act}，一直到天黑。",
        f"{name}带着{colour}的{obj}去了{place}。",
        f"在{place}里，{name}看见了一只{animal}。",
        f"{animal}{sound}地叫了起来。",
        f"{name}觉得很{rng.choice(ZH_FEELINGS)}。",
        f"{name2}送给{name}一个{gift}。",
        "然后他们回家吃晚饭了。",
        f"这是{name}的{obj}，{name}很喜欢它。",
        f"{name}说：“把{obj}给{name2}吧。”",
        f"{name}会写“{obj}”这个词。",
    ]
    idx = [0] + sorted(rng.sample(range(1, len(pool)), rng.randint(2, 5)))
    return [pool[i] for i in idx]


def make_doc(rng: random.Random, story, fact_phrasings, sep: str) -> list[str]:
    """One short plain-text document, as a list of sentences: maybe a small
    story, then facts.

    A fact is sometimes stated twice in different words, so the model sees the
    same words recur within a text and learns to copy from its context (which
    it later needs to echo a question's words in its answer)."""
    sents: list[str] = []
    if rng.random() < 0.35:
        sents += story(rng)
    target = rng.randint(2, 12)
    while len(sents) < target:
        phrasings = fact_phrasings(rng)
        sents += rng.sample(phrasings, 2 if rng.random() < 0.4 else 1)
    return sents


def en_glossary(rng: random.Random) -> list[str]:
    """A word list such as "Opposites:\nhot - cold\nbig - small". Besides
    more facts, it shows words at the start of a line (no leading space), which
    is how a one-word `input` appears in a chat prompt."""
    kind = rng.randrange(6)
    k = rng.randint(3, 9)
    if kind == 0:
        lines = ["Opposites:"] + [f"{x} - {y}" if rng.random() < 0.5 else f"{y} - {x}"
                                  for x, y in rng.sample(EN_OPPOSITES, k)]
    elif kind == 1:
        lines = ["Plurals:"] + [f"{w} - {p}" for w, p in rng.sample(EN_PLURALS, k)]
    elif kind == 2:
        lines = ["Colours:"] + [f"{noun} - {c}" for _, noun, c in rng.sample(EN_COLOURS, k)]
    elif kind == 3:
        lines = ["Animal sounds:"] + [f"{a.split()[1]} - {snd}" for a, snd in rng.sample(EN_SOUNDS, k)]
    elif kind == 4:
        seq, title = (EN_DAYS, "Days of the week:") if rng.random() < 0.5 else (EN_MONTHS, "Months:")
        i = rng.randrange(len(seq))
        lines = [title] + [seq[(i + j) % len(seq)] for j in range(min(k, len(seq)))]
    else:
        i = rng.randint(0, 90)
        lines = ["Counting:"] + [str(i + j) for j in range(k)]
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def zh_glossary(rng: random.Random) -> list[str]:
    kind = rng.randrange(5)
    k = rng.randint(3, 9)
    if kind == 0:
        lines = ["反义词："] + [f"{x} - {y}" if rng.random() < 0.5 else f"{y} - {x}"
                                for x, y in rng.sample(ZH_OPPOSITES, k)]
    elif kind == 1:
        lines = ["颜色："] + [f"{t} - {c}" for t, c in rng.sample(ZH_COLOURS, k)]
    elif kind == 2:
        lines = ["动物的叫声："] + [f"{a} - {snd}" for a, snd in rng.sample(ZH_SOUNDS, k)]
    elif kind == 3:
        seq, title = (ZH_DAYS, "一个星期：") if rng.random() < 0.5 else (ZH_MONTHS, "月份：")
        i = rng.randrange(len(seq))
        lines = [title] + [seq[(i + j) % len(seq)] for j in range(min(k, len(seq)))]
    else:
        i = rng.randint(0, 90)
        lines = ["数数："] + [str(i + j) for j in range(k)]
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


GLOSSARY_SHARE = 0.12


def build_corpus(rng: random.Random, n_en: int, n_zh: int) -> list[list[str]]:
    """Interleaved English and Chinese documents (fixed order), each a list of
    sentences (or lines); `fit_docs` joins them once the tokenizer exists."""
    langs = ["en"] * n_en + ["zh"] * n_zh
    rng.shuffle(langs)
    docs = []
    for lang in langs:
        if rng.random() < GLOSSARY_SHARE:
            docs.append(en_glossary(rng) if lang == "en" else zh_glossary(rng))
        elif lang == "en":
            docs.append(make_doc(rng, en_story, en_fact_phrasings, " "))
        else:
            docs.append(make_doc(rng, zh_story, zh_fact_phrasings, ""))
    return docs


def join_doc(sents: list[str]) -> str:
    # Chinese sentences and word-list lines (which end in a newline) are joined
    # directly; English sentences with a space.
    is_zh = any("\u4e00" <= ch <= "\u9fff" for ch in sents[0])
    return ("" if is_zh or sents[0].endswith("\n") else " ").join(sents)


def fit_docs(docs: list[list[str]], tokenizer) -> list[str]:
    """Drop trailing sentences until each document plus eos fits in SEQ_LEN."""
    out = []
    for sents in docs:
        while len(sents) > 1 and len(tokenizer(join_doc(sents), add_special_tokens=False)["input_ids"]) >= SEQ_LEN:
            sents = sents[:-1]
        out.append(join_doc(sents))
    return out


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------
# Every weight dimension is a multiple of 64 (vocab, hidden, intermediate), so
# every CPU kernel accepts the model: bitsandbytes' packed 4-bit kernel on
# AVX-512 CPUs needs output features divisible by 32, and GPU/AMX tiles like 64.
DIM_MULTIPLE = 64
VOCAB_SIZE = 4096
HIDDEN_SIZE = 128
INTERMEDIATE_SIZE = 384
NUM_LAYERS = 4
NUM_HEADS = 4  # head_dim 32


def train_tokenizer(docs: list[str]) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())  # byte-level: no unknown token needed
    # Split digits individually (as Qwen/Llama-3 do) so arithmetic answers are
    # composed from the same ten digit tokens; then GPT-2 style byte-level
    # splitting, which also handles CJK (3 bytes per character, merged by BPE).
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=IM_END,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=256,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


# ---------------------------------------------------------------------------
# Model pretraining
# ---------------------------------------------------------------------------
def pack_batches(rows: list[list[int]], rng: random.Random) -> list[list[list[int]]]:
    """One epoch of batches. Rows are grouped with rows of similar length (within
    windows of 50 batches) so little compute is spent on padding."""
    order = list(range(len(rows)))
    rng.shuffle(order)
    window = BATCH * 50
    batches = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w: w + window], key=lambda i: len(rows[i]))
        batches += [[rows[i] for i in chunk[b: b + BATCH]] for b in range(0, len(chunk), BATCH)]
    rng.shuffle(batches)
    return [b for b in batches if len(b) == BATCH]


def pretrain(tokenizer: PreTrainedTokenizerFast, docs: list[str]) -> LlamaForCausalLM:
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    pad_id = tokenizer.convert_tokens_to_ids(PAD)
    # Each training row is ONE document followed by the eos token <|im_end|>,
    # right-padded (pads are excluded from the loss). Documents are not packed
    # together: with packing the model learns that text before an <|im_end|> is
    # irrelevant, and it would then ignore the user's message that precedes
    # "<|im_end|>\n<|im_start|>assistant\n" in a chat prompt. Trained this way
    # the base knows how to end a text, still reads its whole context, and never
    # sees <|im_start|> or role headers.
    rows = [enc + [eos_id] for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]]
    assert max(len(r) for r in rows) <= SEQ_LEN
    print(f"corpus: {len(docs)} docs, {sum(len(r) for r in rows):,} tokens, "
          f"mean {sum(len(r) for r in rows) / len(rows):.0f} tokens/doc")

    # BPE may stop short of VOCAB_SIZE on a small corpus; the embedding is
    # rounded up so its rows stay a multiple of DIM_MULTIPLE (spare rows are
    # never produced by the tokenizer and learn low logits).
    vocab_rows = -(-len(tokenizer) // DIM_MULTIPLE) * DIM_MULTIPLE
    config = LlamaConfig(
        vocab_size=vocab_rows,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_HEADS,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=None,  # the tokenizer has no BOS token
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    assert all(d % DIM_MULTIPLE == 0 for d in (config.vocab_size, config.hidden_size, config.intermediate_size))
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config)
    print(f"model parameters: {sum(p.numel() for p in model.parameters()):,}")

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=PEAK_LR, betas=(0.9, 0.95),
    )

    def lr_at(step: int) -> float:  # linear warmup, cosine decay to 10%
        if step < WARMUP:
            return PEAK_LR * (step + 1) / WARMUP
        t = (step - WARMUP) / max(1, PRETRAIN_STEPS - WARMUP)
        return PEAK_LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    batch_rng = random.Random(SEED + 5)
    batches: list = []
    model.train()
    t0 = time.time()
    for step in range(PRETRAIN_STEPS):
        if not batches:  # new epoch, new fixed-seed order
            batches = pack_batches(rows, batch_rng)
        batch = batches.pop()
        width = max(len(r) for r in batch)
        input_ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in batch])
        labels = torch.tensor([r + [-100] * (width - len(r)) for r in batch])
        # Right padding under a causal mask: real tokens never attend to pads,
        # so no attention mask is needed.
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == PRETRAIN_STEPS - 1:
            print(f"step {step:4d}  loss {loss.item():.3f}  lr {lr_at(step):.2e}  {time.time() - t0:.0f}s", flush=True)
    model.eval()
    return model


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
def write_json(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(rows, fh, ensure_ascii=False, indent=1)
        fh.write("\n")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-only", action="store_true", help="rewrite assets/data only, keep the model")
    args = parser.parse_args()
    t_start = time.time()
    torch.set_num_threads(NUM_THREADS)
    random.seed(SEED)
    torch.manual_seed(SEED)

    # 1. Datasets. Each file gets its own seeded RNG so changing one file's
    #    recipe does not reshuffle the others.
    en = sample_dataset(en_families(), EN_QUOTAS, random.Random(SEED + 1), EN_EXAMPLES)
    zh = sample_dataset(zh_families(), ZH_QUOTAS, random.Random(SEED + 2), ZH_EXAMPLES)
    dpo = build_dpo(random.Random(SEED + 3))
    for rows in (en, zh):
        assert len(rows) == 600 and len({json.dumps(r, sort_keys=True) for r in rows}) == 600
    assert len({r["prompt"] for r in dpo}) == len(dpo)
    write_json(DATA_DIR / "demo_en.json", en)
    write_json(DATA_DIR / "demo_zh.json", zh)
    write_json(DATA_DIR / "demo_dpo.json", dpo)
    # The Chat tab's suggested questions: {"en": [...], "zh": [...]}, plain strings.
    with open(DATA_DIR / "demo_examples.json", "w", encoding="utf-8") as fh:
        json.dump({"en": list(EN_EXAMPLES), "zh": list(ZH_EXAMPLES)}, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    print(f"datasets: en={len(en)} zh={len(zh)} dpo={len(dpo)}")
    if args.data_only:
        return

    # 2. Corpus + tokenizer.
    sentence_docs = build_corpus(random.Random(SEED + 4), n_en=10000, n_zh=10000)
    tokenizer = train_tokenizer([join_doc(d) for d in sentence_docs])
    docs = fit_docs(sentence_docs, tokenizer)
    print(f"tokenizer: vocab {len(tokenizer)}, pad={tokenizer.pad_token_id}, eos={tokenizer.eos_token_id}")

    # 3. Pretraining.
    model = pretrain(tokenizer, docs)

    # 4. Save into a fresh sibling folder (no stale files survive), then swap it
    #    in with two renames so a reader never sees a half-written model.
    staging = MODEL_DIR.with_name(MODEL_DIR.name + ".new")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    model.generation_config = GenerationConfig(
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    # transformers 5 records its new class name "TokenizersBackend"; the
    # classic alias "PreTrainedTokenizerFast" names the same class and is also
    # understood by transformers 4.x and other loaders.
    cfg_path = staging / "tokenizer_config.json"
    tok_cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    tok_cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(tok_cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    for path in staging.iterdir():  # safetensors writes 0600 files; assets are readable by all
        path.chmod(0o644)
    retired = MODEL_DIR.with_name(MODEL_DIR.name + ".old")
    if MODEL_DIR.exists():
        MODEL_DIR.rename(retired)
    staging.rename(MODEL_DIR)
    shutil.rmtree(retired, ignore_errors=True)
    print(f"saved to {MODEL_DIR} in {time.time() - t_start:.0f}s total")


if __name__ == "__main__":
    main()
