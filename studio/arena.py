"""The A/B arena's backend: adapters sharing one base model, blind votes, win rates and ratings.

    pool = AdapterPool("demo")                          # the base model, loaded once
    a = pool.add(run_a.path / "adapter")                # LoRA adapters attached by name
    b = pool.add(run_b.path / "adapter")
    mix = pool.combine([a, b], [0.7, 0.3])              # a weighted combination ("cat": any ranks)
    for text in pool.stream(a, messages, ChatSettings(max_new_tokens=64)): ...
    pool.answer(BASE, messages)                         # the base itself (adapters switched off)

    arena = Arena(store)                                # model ids -> (pool, adapter name)
    arena.stream("run:<id>", messages, settings)        # ids: "demo", "run:<id>", "mix:<id>@0.5+<id>@0.5"

    votes = VoteStore(home)                             # <home>/arena/votes.jsonl, append-only
    left = assign_sides(rng)                            # which model ("a"/"b") goes on the left
    matches = schedule(prompts, "run:x", "demo", rng)   # batch mode: one blind match per prompt
    model_choices(store, "zh")                          # [(label, model id)] for the panes
    votes.add(a="run:x", b="demo", left=left, winner="a", prompt=…, answer_a=…, answer_b=…, settings={…})
    win_rates(votes.all())                              # one row per pair of models
    bradley_terry(votes.all())                          # {model: (rating, low, high)}, Elo-scaled
    prompts_from("one\\ntwo") / prompts_from(Path("p.jsonl")) / prompts_from(run)

Adapters on one base share its weights: PEFT attaches each adapter's small matrices to the same
layers (`load_adapter`, `set_adapter`), so two adapters cost one base in memory, not two. Because
the active adapter is a property of the shared model, a pool answers one request at a time (its
lock); the two panes of the arena take turns. Only safetensors weights are loaded, and an adapter
is checked against the base before it is attached: its recorded base, and the shapes of its
matrices against the base's layers, so an adapter made for another model is refused by name
instead of failing deep inside PEFT.

Ratings follow Chatbot Arena: a Bradley–Terry model fitted by maximum likelihood (Newton's
method, numpy; ties count half a win to each side, "both bad" is a tie), shown on the Elo scale
(400 points = 10:1 odds, 1000 = a virtual reference player that every model has drawn one game
with, which keeps the ratings finite when one model has won every vote), with a bootstrap
confidence interval over resampled votes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
import time
from pathlib import Path

from studio.errors import UserError
from studio.infer import ChatSettings, Generation, generate_answers, load_base_model, require_safetensors
from studio.paths import expand_user, resolve_model_path

BASE = "base"  # the pool's name for the base model with every adapter switched off
COMBINATIONS = ("cat", "linear", "svd")  # PEFT add_weighted_adapter types offered ("cat": exact, any ranks)
WINNERS = ("a", "b", "tie", "both_bad")
SIDES = ("a", "b")
MAX_VOTE_TEXT = 20_000  # characters kept of a prompt or an answer in a vote
MAX_PROMPTS = 1000
# Config fields that must agree between the base an adapter was trained on and the chosen base.
SHAPE_FIELDS = ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads", "vocab_size")


# --- adapters on one base -------------------------------------------------------------------------

def adapter_base(folder: str | Path) -> str:
    """The base model an adapter folder says it was trained on ("" when it does not say)."""
    config = _read_json(Path(folder) / "adapter_config.json")
    return str(config.get("base_model_name_or_path") or "")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _same_shape(config_a: dict, config_b: dict) -> bool:
    def pick(config):  # multimodal configs nest the language model's fields
        config = config.get("text_config", config) if isinstance(config.get("text_config"), dict) else config
        return {k: config.get(k) for k in SHAPE_FIELDS if config.get(k) is not None}

    a, b = pick(config_a), pick(config_b)
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def check_adapter_folder(folder: str | Path) -> Path:
    """A LoRA adapter folder with safetensors weights -> its path, else UserError."""
    path = Path(folder)
    config = _read_json(path / "adapter_config.json")
    if not config:
        raise UserError("arena.not_an_adapter", key="adapter.path", path=str(path))
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise UserError("arena.adapter_kind", key="adapter.path", path=str(path), kind=str(config.get("peft_type")))
    require_safetensors(path, "adapter")
    if not (path / "adapter_model.safetensors").is_file():
        raise UserError("arena.no_weights", key="adapter.path", path=str(path))
    return path


class AdapterPool:
    """One base model in memory and any number of LoRA adapters attached to it by name."""

    def __init__(self, base: str | Path, trust_remote_code: bool = False):
        from studio.config import ModelSection
        from studio.models import check_model

        self.base = resolve_model_path(str(base))
        # one sentence for a missing folder, an unreachable Hub or remote code, before loading
        check_model(ModelSection(path=self.base, trust_remote_code=trust_remote_code))
        self.model, self.tokenizer = load_base_model(self.base, trust_remote_code)
        self.base_config = _read_json(Path(self.base) / "config.json") or self.model.config.to_dict()
        self.peft = None  # the PeftModel around self.model, once an adapter is attached
        self.adapters: dict[str, str] = {}  # name -> adapter folder (or a combination's recipe)
        self._by_key: dict[str, str] = {}
        self._switched_to: str | None = None  # the adapter set_adapter last made active
        self.lock = threading.Lock()  # one generation or change at a time: the active adapter is shared

    def base_weights(self):
        """The base's input embedding tensor: the same object whichever adapter is active."""
        return self.model.get_input_embeddings().weight

    def names(self) -> list[str]:
        return [BASE, *self.adapters]

    def add(self, folder: str | Path, name: str | None = None) -> str:
        """Attach the adapter in `folder` (once; the same folder again returns the same name)."""
        path = check_adapter_folder(folder)
        key = os.path.realpath(path)
        with self.lock:
            if key in self._by_key:
                return self._by_key[key]
            self._check_base(path)
            name = self._new_name(name)
            if self.peft is None:
                from peft import PeftModel

                self.peft = PeftModel.from_pretrained(self.model, str(path), adapter_name=name,
                                                      is_trainable=False, use_safetensors=True)
                self.peft.eval()
            else:
                self.peft.load_adapter(str(path), adapter_name=name, is_trainable=False, use_safetensors=True)
            self.adapters[name] = str(path)
            self._by_key[key] = name
            self._switched_to = None  # loading may change PEFT's state: switch again next time
            return name

    def combine(self, names: list[str], weights: list[float], combination: str = "cat",
                name: str | None = None) -> str:
        """A new adapter that is the weighted sum of attached ones (PEFT `add_weighted_adapter`).

        "cat" stacks the adapters' matrices: exact for any ranks (the rank is their sum);
        "linear" averages matrices of equal rank; "svd" re-factors the sum to the largest rank."""
        if combination not in COMBINATIONS:
            raise UserError("arena.bad_combination", value=str(combination), choices=", ".join(COMBINATIONS))
        if len(names) < 2 or len(names) != len(weights) or any(n not in self.adapters for n in names):
            raise UserError("arena.combine_needs_two")
        try:
            weights = [float(w) for w in weights]
        except (TypeError, ValueError):
            raise UserError("arena.bad_weights") from None
        if not all(math.isfinite(w) and -10 <= w <= 10 for w in weights) or not any(weights):
            raise UserError("arena.bad_weights")
        key = json.dumps([names, weights, combination])
        with self.lock:
            if key in self._by_key:
                return self._by_key[key]
            ranks = {self.peft.peft_config[n].r for n in names}
            if combination == "linear" and len(ranks) > 1:
                raise UserError("arena.combine_ranks", ranks=", ".join(map(str, sorted(ranks))))
            name = self._new_name(name)
            try:
                self.peft.add_weighted_adapter(names, weights, name, combination_type=combination)
            except (ValueError, TypeError) as exc:
                raise UserError("arena.combine_failed", detail=str(exc)[:200]) from None
            self.adapters[name] = key
            self._by_key[key] = name
            self._switched_to = None
            return name

    def _new_name(self, wanted: str | None) -> str:
        # PEFT names become module keys: plain identifiers only.
        name = wanted if wanted and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,40}", wanted) else None
        index = len(self.adapters)
        while name is None or name in self.adapters or name == BASE:
            name, index = f"adapter_{index}", index + 1
        return name

    def _check_base(self, folder: Path) -> None:
        """Refuse an adapter made for another base, naming both, before PEFT tries to load it."""
        recorded = adapter_base(folder)
        refuse = UserError("arena.adapter_other_base", key="adapter.path", adapter=str(folder),
                           adapter_base=recorded or "?", base=self.base)
        if recorded:
            resolved = resolve_model_path(recorded)
            recorded_config = _read_json(Path(resolved) / "config.json")
            same_place = os.path.realpath(resolved) == os.path.realpath(self.base) or recorded == self.base
            if not same_place and recorded_config and not _same_shape(recorded_config, self.base_config):
                raise refuse
        if not self._shapes_fit(folder):
            raise refuse

    def _shapes_fit(self, folder: Path) -> bool:
        """Every LoRA matrix in the adapter has a layer of the right size in the base."""
        from safetensors import safe_open

        modules = dict(self.model.named_modules())
        with safe_open(str(folder / "adapter_model.safetensors"), framework="pt") as fh:
            for key in fh.keys():
                match = re.fullmatch(r"base_model\.model\.(.+)\.lora_(A|B|embedding_A|embedding_B)(?:\.weight)?", key)
                if not match:
                    continue
                module = modules.get(match.group(1))
                module = getattr(module, "base_layer", module)
                if module is None:
                    return False
                shape = fh.get_slice(key).get_shape()
                part = match.group(2)
                if hasattr(module, "in_features"):
                    want = module.in_features if part == "A" else module.out_features
                    size = shape[1] if part == "A" else shape[0]
                elif hasattr(module, "num_embeddings"):
                    want = module.num_embeddings if part == "embedding_A" else module.embedding_dim
                    size = shape[1] if part == "embedding_A" else shape[0]
                else:
                    continue
                if size != want:
                    return False
        return True

    @contextlib.contextmanager
    def _active(self, name: str):
        """The model with adapter `name` switched on (BASE: all off). Caller holds the lock."""
        if name == BASE:
            if self.peft is None:
                yield self.model
            else:
                with self.peft.disable_adapter():
                    yield self.peft
            return
        if name not in self.adapters:
            raise UserError("arena.unknown_adapter", name=str(name)[:80])
        if self._switched_to != name:  # set_adapter walks every module: milliseconds per answer
            self._switched_to = None
            self.peft.set_adapter(name)
            self._switched_to = name
        yield self.peft

    @contextlib.contextmanager
    def using(self, name: str):
        """The model with adapter `name` active, for this caller alone until the block ends."""
        with self.lock, self._active(name) as model:
            yield model

    def stream(self, name: str, messages: list[dict], settings: ChatSettings | None = None,
               cancel: threading.Event | None = None):
        """Yield the growing answer of adapter `name` (the pool is held until it ends or is closed)."""
        with self.using(name) as model:
            yield from Generation(model, self.tokenizer, messages, settings, cancel)

    def answer(self, name: str, messages: list[dict], settings: ChatSettings | None = None) -> str:
        text = ""
        for text in self.stream(name, messages, settings):
            pass
        return text

    def generate(self, name: str, prompts: list[list[dict]], max_new_tokens: int = 64,
                 settings: ChatSettings | None = None) -> list[str]:
        """Batched answers of adapter `name` (the Evaluate tab's way, for batch mode): greedy with
        `max_new_tokens`, or with every chat setting of `settings` (then max_new_tokens is unused)."""
        with self.using(name) as model:
            return generate_answers(model, self.tokenizer, prompts, max_new_tokens, settings=settings)


# --- model ids: what a pane shows and a vote records ------------------------------------------------

MIX = re.compile(r"mix(?:-(cat|linear|svd))?:(.+)")
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def mix_id(parts: list[tuple[str, float]], combination: str = "cat") -> str:
    """The model id of a weighted combination: mix:run:<a>@0.7+run:<b>@0.3 (run ids only)."""
    prefix = "mix" if combination == "cat" else f"mix-{combination}"
    return prefix + ":" + "+".join(f"{model}@{weight:g}" for model, weight in parts)


class Arena:
    """Model ids -> loaded models, one AdapterPool per base (at most `max_bases` kept loaded).

    Ids: a base model name ("demo", a Hub id, a model folder), "run:<run id>" (a finished run's
    adapter or saved model) and "mix:run:<a>@<w>+run:<b>@<w>" (a weighted combination of two run
    adapters on one base; "mix-linear:"/"mix-svd:" choose the combination). Local folders are
    accepted only with `allow_paths` (the CLI's own user); the page passes names and run ids."""

    def __init__(self, store, max_bases: int = 2, trust_remote_code: bool = False, allow_paths: bool = False):
        self.store = store
        self.max_bases = max_bases
        self.trust_remote_code = trust_remote_code
        self.allow_paths = allow_paths
        self.pools: dict[str, AdapterPool] = {}
        self._lock = threading.Lock()

    def pool(self, base: str) -> AdapterPool:
        key = resolve_model_path(base)
        with self._lock:
            if key not in self.pools:
                if len(self.pools) >= self.max_bases:
                    self.pools.pop(next(iter(self.pools)))
                self.pools[key] = AdapterPool(key, self.trust_remote_code)
            return self.pools[key]

    def run_output(self, run_id: str) -> tuple[Path, str]:
        """(adapter or model folder, base model) of a finished run, or UserError."""
        try:
            run = self.store.get(run_id)
        except KeyError:
            raise UserError("arena.run_missing", run=str(run_id)[:80]) from None
        from studio.export import output_of  # the one rule for "a finished run's output and base"

        return output_of(run)

    def resolve(self, model_id: str) -> tuple[AdapterPool, str]:
        """(pool, adapter name) for a model id, loading what is needed."""
        model_id = (model_id or "").strip()
        mix = MIX.fullmatch(model_id)
        if mix:
            return self._mix(mix.group(2), mix.group(1) or "cat")
        if model_id.startswith("run:"):
            output, base = self.run_output(model_id[4:])
            return self._folder(output, base)
        if self.allow_paths and (folder := expand_user(model_id)).is_dir():
            folder = folder.resolve()
            if (folder / "adapter_config.json").exists():
                return self._folder(folder, adapter_base(folder))
            return self.pool(str(folder)), BASE
        if model_id == "demo" or (not Path(model_id).is_absolute() and re.fullmatch(r"[\w.-]+/[\w.-]+", model_id)):
            return self.pool(model_id), BASE
        raise UserError("arena.unknown_model", model=model_id[:80])

    def _folder(self, folder: Path, base: str) -> tuple[AdapterPool, str]:
        if (folder / "adapter_config.json").exists():
            check_adapter_folder(folder)
            pool = self.pool(base or adapter_base(folder))
            return pool, pool.add(folder)
        return self.pool(str(folder)), BASE  # a full fine-tune: its own model

    def _mix(self, spec: str, combination: str) -> tuple[AdapterPool, str]:
        parts = []
        for item in spec.split("+"):
            model, _, weight = item.rpartition("@")
            try:
                parts.append((model, float(weight)))
            except ValueError:
                raise UserError("arena.bad_weights") from None
        if len(parts) != 2 or not all(m.startswith("run:") for m, _ in parts):
            raise UserError("arena.combine_needs_two")
        resolved = [self.resolve(model) for model, _ in parts]
        pools = {id(pool) for pool, _ in resolved}
        if len(pools) != 1 or any(name == BASE for _, name in resolved):
            raise UserError("arena.combine_other_bases")
        pool = resolved[0][0]
        return pool, pool.combine([name for _, name in resolved], [w for _, w in parts], combination)

    def stream(self, model_id: str, messages: list[dict], settings: ChatSettings | None = None,
               cancel: threading.Event | None = None):
        pool, name = self.resolve(model_id)
        yield from pool.stream(name, messages, settings, cancel)

    def answer(self, model_id: str, messages: list[dict], settings: ChatSettings | None = None) -> str:
        pool, name = self.resolve(model_id)
        return pool.answer(name, messages, settings)


def model_choices(store, lang: str | None = None, base: str = "demo") -> list[tuple[str, str]]:
    """(label, model id) for a pane's model list: the base model, then every finished run with a
    saved adapter or model, newest first. Read each time it is called, so new runs appear."""
    from studio.i18n import t

    choices = [(t("arena.base_model", lang, base=base), base)]
    for row in store.list():
        if row["output"] and row["state"] in ("completed", "stopped"):
            choices.append((t("arena.run_choice", lang, run=row["id"], method=row["method"]), f"run:{row['id']}"))
    return choices


# --- votes -----------------------------------------------------------------------------------------

def schedule(prompts: list[str], a: str, b: str, rng) -> list[dict]:
    """Batch mode: one blind match per prompt, each with its own coin for the sides:
    [{"prompt", "a", "b", "left": "a"|"b", "left_model", "right_model"}]."""
    if a == b:
        raise UserError("arena.same_model")
    matches = []
    for prompt in prompts:
        left = assign_sides(rng)
        matches.append({"prompt": prompt, "a": a, "b": b, "left": left,
                        "left_model": a if left == "a" else b, "right_model": b if left == "a" else a})
    return matches


def assign_sides(rng) -> str:
    """Which model ("a" or "b") is shown on the left for one prompt: a fair coin, so position
    bias cannot decide a comparison. `rng` is a random.Random (seed it for repeatable tests)."""
    return "a" if rng.random() < 0.5 else "b"


def _clip(text) -> str:
    return str(text or "")[:MAX_VOTE_TEXT]


class VoteStore:
    """Blind A/B votes in `<home>/arena/votes.jsonl`: one JSON object per line, append-only.

    A line cut short (a crash mid-write) or damaged by hand is skipped when reading; the votes
    before and after it still count. The Evaluate tab reads the same file for its human score."""

    def __init__(self, home: str | Path):
        self.path = Path(home) / "arena" / "votes.jsonl"
        self._lock = threading.Lock()

    def add(self, a: str, b: str, winner: str, left: str = "a", prompt: str = "", answer_a: str = "",
            answer_b: str = "", settings: dict | None = None) -> dict:
        if winner not in WINNERS:
            raise UserError("arena.bad_winner", winner=str(winner)[:20])
        if left not in SIDES:
            raise UserError("arena.bad_side", side=str(left)[:20])
        if not a or not b or a == b:
            raise UserError("arena.same_model")
        vote = {"t": time.time(), "a": str(a), "b": str(b), "left": left, "winner": winner,
                "prompt": _clip(prompt), "answer_a": _clip(answer_a), "answer_b": _clip(answer_b),
                "settings": settings if isinstance(settings, dict) else {}}
        line = json.dumps(vote, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                # a torn line from an earlier crash must not swallow this vote: start a fresh line
                if fh.tell() and not self._ends_with_newline():
                    line = "\n" + line
                fh.write(line)
        return vote

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def all(self) -> list[dict]:
        try:
            raw = self.path.read_bytes()
        except OSError:
            return []
        votes = []
        for line in raw.splitlines():
            try:
                vote = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                continue
            if (isinstance(vote, dict) and vote.get("winner") in WINNERS and isinstance(vote.get("a"), str)
                    and isinstance(vote.get("b"), str) and vote["a"] != vote["b"]):
                votes.append(vote)
        return votes

    def __len__(self) -> int:
        return len(self.all())


RUN_REF = re.compile(r"run:([A-Za-z0-9][A-Za-z0-9._-]*)")  # a run named in a model id (run:, mix:)


def run_ids_in(model_id) -> list[str]:
    """The run ids a model id names: 'run:<id>' one, a combination two, a base none."""
    return RUN_REF.findall(str(model_id or ""))


def visible_votes(votes: list[dict], store) -> list[dict]:
    """The votes a reader of `store` may see. A store that tells visitors apart (demo mode's
    ScopedRunStore: `visible`) hides every vote naming a run that is not the current visitor's
    (another visitor's, or one deleted since), so neither its id nor its prompt reaches them;
    votes between bases only stay. A plain RunStore sees every vote."""
    visible = getattr(store, "visible", None)
    if visible is None:
        return list(votes)
    from studio.runs import Run

    seen: dict[str, bool] = {}

    def mine(run_id: str) -> bool:
        if run_id not in seen:
            seen[run_id] = bool(visible(Run(Path(store.root) / run_id)))
        return seen[run_id]

    return [v for v in votes if all(mine(rid) for rid in run_ids_in(v["a"]) + run_ids_in(v["b"]))]


def win_rates(votes: list[dict]) -> list[dict]:
    """One row per pair of models (in the order the pair was first voted on), most votes first:
    {"a", "b", "votes", "a_wins", "b_wins", "ties", "both_bad", "a_rate", "b_rate"} where a rate
    is the share of that pair's votes the model won outright."""
    rows: dict[tuple[str, str], dict] = {}
    for vote in votes:
        a, b, winner = vote["a"], vote["b"], vote["winner"]
        if (b, a) in rows:  # the same pair seen the other way round
            a, b = b, a
            winner = {"a": "b", "b": "a"}.get(winner, winner)
        row = rows.setdefault((a, b), {"a": a, "b": b, "votes": 0, "a_wins": 0, "b_wins": 0,
                                       "ties": 0, "both_bad": 0})
        row["votes"] += 1
        row[{"a": "a_wins", "b": "b_wins", "tie": "ties", "both_bad": "both_bad"}[winner]] += 1
    for row in rows.values():
        row["a_rate"] = row["a_wins"] / row["votes"]
        row["b_rate"] = row["b_wins"] / row["votes"]
    return sorted(rows.values(), key=lambda r: -r["votes"])


def pair_summary(votes: list[dict], a: str, b: str) -> dict | None:
    """The win-rate row for models a and b, oriented as asked (None when they have no votes)."""
    for row in win_rates(votes):
        if (row["a"], row["b"]) == (a, b):
            return row
        if (row["a"], row["b"]) == (b, a):
            return {**row, "a": a, "b": b, "a_wins": row["b_wins"], "b_wins": row["a_wins"],
                    "a_rate": row["b_rate"], "b_rate": row["a_rate"]}
    return None


ELO_SCALE, ELO_BASE = 400.0, 1000.0


def _fit(wins, games):
    """Bradley–Terry log-strengths by Newton's method on the log-likelihood. wins[i, j]: i's score
    against j (a tie is half to each); games[i, j]: games between them. Every model has also drawn
    one game with a reference player of log-strength 0: a weak prior that keeps the ratings finite
    (an unbeaten model) and the problem strictly concave, so Newton converges in a few steps."""
    import numpy as np

    theta = step = np.zeros(len(wins))
    objective = None
    for _ in range(100):
        diff = theta[:, None] - theta[None, :]
        p = 1 / (1 + np.exp(-diff))
        ref = 1 / (1 + np.exp(-theta))
        loglik = float((wins * np.log(p)).sum() + (0.5 * np.log(ref) + 0.5 * np.log(1 - ref)).sum())
        if objective is not None and loglik < objective - 1e-12:  # overshoot: halve the last step
            theta = theta - step / 2
            step = step / 2
            continue
        objective = loglik
        grad = (wins - games * p).sum(axis=1) + 0.5 - ref
        weight = games * p * (1 - p)
        hessian = weight - np.diag(weight.sum(axis=1) + ref * (1 - ref))
        step = np.linalg.solve(hessian, -grad)
        theta = theta + step
        if np.abs(step).max() < 1e-9:
            break
    return theta


def _tally(votes: list[dict], models: list[str]):
    """(pair index arrays, scores) of the votes, for fast resampling."""
    import numpy as np

    index = {m: i for i, m in enumerate(models)}
    first = np.array([index[v["a"]] for v in votes])
    second = np.array([index[v["b"]] for v in votes])
    score = np.array([{"a": 1.0, "b": 0.0}.get(v["winner"], 0.5) for v in votes])
    return first, second, score


def _ratings(tally, n: int, counts=None):
    import numpy as np

    first, second, score = tally
    weight = np.ones(len(score)) if counts is None else counts
    wins, games = np.zeros((n, n)), np.zeros((n, n))
    np.add.at(wins, (first, second), weight * score)
    np.add.at(wins, (second, first), weight * (1 - score))
    np.add.at(games, (first, second), weight)
    np.add.at(games, (second, first), weight)
    return ELO_BASE + ELO_SCALE * _fit(wins, games) / np.log(10)


def bradley_terry(votes: list[dict], bootstrap: int = 200, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """{model: (rating, low, high)}: the Elo-scaled Bradley–Terry rating and its 95% bootstrap
    interval (votes resampled with replacement `bootstrap` times). Empty without votes."""
    import numpy as np

    votes = [v for v in votes if v.get("winner") in WINNERS and v.get("a") != v.get("b")]
    if not votes:
        return {}
    models = sorted({v["a"] for v in votes} | {v["b"] for v in votes})
    tally = _tally(votes, models)
    point = _ratings(tally, len(models))
    rng = np.random.default_rng(seed)
    samples = np.array([_ratings(tally, len(models), rng.multinomial(len(votes), [1 / len(votes)] * len(votes)))
                        for _ in range(max(0, int(bootstrap)))])
    result = {}
    for i, model in enumerate(models):
        rating = float(point[i])
        low, high = (float(np.percentile(samples[:, i], 2.5)), float(np.percentile(samples[:, i], 97.5))) \
            if len(samples) else (rating, rating)
        result[model] = (rating, min(low, rating), max(high, rating))
    return dict(sorted(result.items(), key=lambda kv: -kv[1][0]))


# --- prompts for batch mode ------------------------------------------------------------------------

def _prompt_of(row) -> str:
    """The question of one dataset row or internal record, as text ("" when there is none)."""
    if isinstance(row, str):
        return row
    if not isinstance(row, dict):
        return ""
    prompt = row.get("prompt")
    if isinstance(prompt, list):  # internal record: the last user turn
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users and isinstance(users[-1], str) else ""
    if isinstance(prompt, str):
        return prompt
    if isinstance(row.get("instruction"), str):  # alpaca
        extra = row.get("input") if isinstance(row.get("input"), str) else ""
        return f"{row['instruction']}\n\n{extra}" if extra.strip() else row["instruction"]
    for key in ("question", "query", "text"):
        if isinstance(row.get(key), str):
            return row[key]
    for key in ("messages", "conversations"):
        turns = row.get(key)
        if isinstance(turns, list):
            for turn in turns:
                if isinstance(turn, dict) and (turn.get("role") or turn.get("from")) in ("user", "human"):
                    text = turn.get("content", turn.get("value"))
                    return text if isinstance(text, str) else ""
    return ""


def prompts_from(source, limit: int = MAX_PROMPTS) -> list[str]:
    """Prompts for batch mode from typed text (one per line), a file (.txt: one per line; JSON,
    JSONL, CSV, Parquet: each row's question), or a run (its held-out test split). At most `limit`;
    UserError when there are none."""
    from studio.runs import Run

    if isinstance(source, Run):
        path = source.path / "data" / "test.jsonl"
        if not path.is_file():
            raise UserError("arena.no_test_split", run=source.id)
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
        prompts = [_prompt_of(row) for row in rows]
    elif isinstance(source, Path):
        from studio.dataload import read_rows  # the safe reader: size caps, one sentence per problem

        prompts = [_prompt_of(row) for row in read_rows(source)]
    else:
        prompts = str(source or "").splitlines()
    prompts = [p.strip() for p in prompts if isinstance(p, str) and p.strip()]
    if not prompts:
        raise UserError("arena.no_prompts")
    return prompts[:limit]
