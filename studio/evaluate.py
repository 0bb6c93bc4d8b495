"""Evaluation: did fine-tuning help? Base model against fine-tuned, on held-out data, cached per run.

    ev = evaluator(ws.jobs, ws.home)                         # one per job manager
    job = ev.start(["<run id>"], data="test", settings=GenerationSettings(), general="demo-zh")
    ev.status(job.id)      # {"state", "fraction", "message", "items": [...]}; ev.stop(job.id)
    results = ev.results(job.id)       # [{"run", "test": scores.json, "general": scores.json | None}]
    result = evaluate_now(jobs, run, data=None, settings=…)   # the CLI: same path, waits

What is evaluated: each chosen run's fine-tuned model (its LoRA adapter on the base model, or its
saved full model) and the base model it started from, on a test set — the run's held-out test
split (run/data/test.jsonl) by default, a library dataset's test split (`library:<id>`), a bundled
set or an uploaded file — with batched generation (studio.generation). Scores: ROUGE-1/2/L and
corpus BLEU against the references (studio.metrics), plus eval loss and perplexity of the
references. Optionally the same on a second, general set (the forgetting check).

Evaluation is a job of the one JobManager (one device): while a training run holds it, an
evaluation waits in line and says so, then starts by itself. Its status and log live in the eval
folder, not in the run's status.json, so evaluating never changes how the run itself reads.

Results: `runs/<id>/eval/<key>/` with `scores.json` ({"base", "tuned", "settings", "data_hash",
"rows", "tokenization", …}) and `examples.jsonl` (prompt, reference, base, tuned, per-example
ROUGE-L and BLEU). The key hashes (base model, fine-tuned weights, data hash, generation settings),
so asking again is a cache hit. Base-model results are also reused across runs with the same key.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import json
import math
import re
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from studio.errors import UserError, explain
from studio.generation import GenerationSettings, perplexity
from studio.i18n import Msg, render
from studio.paths import resolve_data_path, resolve_model_path
from studio.runs import Run, _write_json_atomic, _write_text_atomic

METRICS = ("rouge1", "rouge2", "rougeL", "bleu", "eval_loss", "perplexity")
LOWER_IS_BETTER = {"eval_loss", "perplexity"}
DEFAULT_GENERAL_ROWS = 100  # a general set (forgetting check) is sampled down to this by default
FORGETTING_TOLERANCE = 0.05  # a 5 % worse ROUGE-L or perplexity on the general set counts as a drop,
FORGETTING_MIN_ROUGE = 0.01  # and, for ROUGE-L, at least 0.01 lower (tiny scores are mostly noise)
SCORES_FILE, EXAMPLES_FILE = "scores.json", "examples.jsonl"
PHASES = {("base", "generate"): "evaluate.phase_base_generate", ("base", "loss"): "evaluate.phase_base_loss",
          ("tuned", "generate"): "evaluate.phase_tuned_generate", ("tuned", "loss"): "evaluate.phase_tuned_loss"}
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


# ---- what is evaluated -----------------------------------------------------------------------

@dataclass
class Target:
    """One run's models: the base it started from and what training produced."""

    run: Run
    base: str  # the base model as resolve_model_path gives it (a folder or a Hub id)
    base_name: str  # as the run's config names it ('demo', 'Qwen/…')
    kind: str  # 'adapter' or 'model'
    output: Path
    trust_remote_code: bool = False


def target_for(run: Run) -> Target:
    """The run's base and fine-tuned model, or one sentence saying why it cannot be evaluated."""
    status = run.status()
    state = status.get("state", "unknown")
    if state in ("queued", "running", "stopping"):
        raise UserError("evaluate.run_active", run=run.id)
    output = run.output_dir()
    if output is None:
        code = "evaluate.run_failed" if state in ("failed", "crashed") else "evaluate.no_output"
        raise UserError(code, run=run.id)
    try:
        cfg = run.config()
    except Exception:
        raise UserError("evaluate.no_config", run=run.id) from None
    base = resolve_model_path(cfg.model.path)
    if not (Path(base).is_dir() or _in_hub_cache(base)):
        raise UserError("evaluate.base_missing", run=run.id, model=cfg.model.path)
    kind = "adapter" if output.name == "adapter" else "model"
    weights = ("adapter_model.safetensors",) if kind == "adapter" else ("model.safetensors",
                                                                        "model.safetensors.index.json")
    if not any((output / name).is_file() for name in weights):
        raise UserError("evaluate.no_weights", run=run.id, folder=str(output))
    return Target(run, base, cfg.model.path, kind, output, cfg.model.trust_remote_code)


def _in_hub_cache(model_id: str) -> bool:
    """A Hub model counts as present when its config is in the local Hub cache (no network)."""
    if Path(model_id).is_absolute() or "/" not in model_id:
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:
        return False


def _fingerprint(folder: Path) -> str:
    """The fine-tuned weights' identity: content hashes of small files, size + mtime of large."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(path.name.encode())
        if stat.st_size <= 64 << 20:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        else:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _base_fingerprint(base: str) -> str:
    path = Path(base)
    if not path.is_dir():
        return base  # a Hub id
    parts = [base] + [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                      for p in sorted(path.iterdir()) if p.is_file()]
    return "|".join(parts)


# ---- test sets -------------------------------------------------------------------------------

@dataclass
class TestSet:
    """Examples to score: chat prompts and reference answers, with a content hash."""

    source: str  # 'test' (the run's split), 'library:<id>', a bundled name or a file path
    label: str  # what the page shows
    prompts: list[list[dict]]
    references: list[str]
    prompt_texts: list[str]
    tools: list | None
    hash: str
    skipped: int = 0  # records with nothing to answer (plain text records)


def record_texts(record: dict) -> tuple[str, str]:
    """(prompt, answer) of a record as plain text (studio.formats when present)."""
    try:
        from studio.formats import record_texts as texts

        return texts(record)
    except ImportError:
        pass
    if "text" in record and "prompt" not in record:
        return "", str(record["text"])
    prompt = "\n".join(str(m.get("content") or "") for m in record.get("prompt") or [] if m.get("role") != "system")
    answer = record.get("completion") or record.get("chosen") or []
    answer = answer if isinstance(answer, list) else [{"content": answer}]
    return prompt, "\n".join(str(m.get("content") or "") for m in answer if isinstance(m, dict))


def test_set_from_records(records: list[dict], source: str, label: str, max_rows: int = 0,
                          seed: int = 0) -> TestSet:
    """Records (TRL prompt/completion form) -> a TestSet. Refuses an empty set."""
    import random

    usable, skipped = [], 0
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), list) or not record["prompt"]:
            skipped += 1
            continue
        prompt_text, answer = record_texts(record)
        if not answer.strip():
            skipped += 1
            continue
        usable.append((record, prompt_text, answer))
    if max_rows and len(usable) > max_rows:  # a seeded sample: the same rows every time
        usable = random.Random(seed).sample(usable, max_rows)
    if not usable:
        raise UserError("evaluate.empty_test_set", source=label)
    prompts = [[{k: v for k, v in m.items() if not k.startswith("_")} for m in r["prompt"]] for r, _, _ in usable]
    tools = [r.get("tools") for r, _, _ in usable]
    references = [a for _, _, a in usable]
    digest = hashlib.sha256(json.dumps([prompts, references, tools], ensure_ascii=False,
                                       sort_keys=True).encode("utf-8")).hexdigest()
    return TestSet(source, label, prompts, references, [p for _, p, _ in usable],
                   tools if any(tools) else None, digest, skipped)


def _read_jsonl(path: Path, label: str) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except (OSError, UnicodeDecodeError, ValueError):
        raise UserError("evaluate.unreadable_test_set", source=label) from None


def load_test_set(run: Run | None, data: str | None = None, home: Path | None = None,
                  max_rows: int = 0) -> TestSet:
    """The test set a request names: None/'test' -> the run's held-out split; 'library:<id>' ->
    that dataset's test split; anything else -> a bundled name or a data file (all rows)."""
    data = (data or "test").strip()
    if data == "test":
        if run is None:
            raise UserError("evaluate.need_data")
        path = run.path / "data" / "test.jsonl"
        label = f"{run.id} · test"
        if not path.is_file():
            raise UserError("evaluate.no_test_split", run=run.id)
        return test_set_from_records(_read_jsonl(path, label), "test", label, max_rows)
    if data.startswith("library:"):
        from studio.library import Library

        records = Library(home).records(data, "test")
        return test_set_from_records(records, data, data, max_rows)
    from studio.data import load_rows

    try:
        from studio.formats import to_records

        def convert(rows):
            return to_records(rows)
    except ImportError:
        from studio.data import to_sft_records as convert

    path = resolve_data_path(data)
    label = Path(path).name if Path(path).exists() else data
    rows = load_rows(data)
    try:
        records = convert(rows)
    except UserError as exc:
        if exc.msg.code in ("data.no_usable_rows", "formats.no_usable_rows"):
            raise UserError("evaluate.empty_test_set", source=label) from None
        raise
    return test_set_from_records(records, data, label, max_rows)


# ---- keys and the cache -----------------------------------------------------------------------

def _hash(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def base_key(target: Target, test: TestSet, settings: GenerationSettings) -> str:
    return _hash({"model": _base_fingerprint(target.base), "data": test.hash, "gen": settings.key_dict()})[:16]


def eval_key(target: Target, test: TestSet, settings: GenerationSettings) -> str:
    """Hash of (base model, fine-tuned weights, data hash, generation settings): the eval folder."""
    return _hash({"model": _base_fingerprint(target.base), "adapter": _fingerprint(target.output),
                  "data": test.hash, "gen": settings.key_dict()})[:16]


def read_scores(folder: Path) -> dict | None:
    """A finished evaluation's scores.json, or None (missing, half-written, stopped)."""
    try:
        data = json.loads((folder / SCORES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "base" in data and "tuned" in data else None


def read_examples(folder: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in (folder / EXAMPLES_FILE).read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except (OSError, ValueError):
        return []


def run_evaluations(run: Run) -> list[dict]:
    """Every finished evaluation of a run (scores.json dicts, with "folder"), newest first."""
    found = []
    root = run.path / "eval"
    if root.is_dir():
        for folder in root.iterdir():
            scores = read_scores(folder) if folder.is_dir() else None
            if scores is not None:
                found.append({**scores, "folder": str(folder)})
    return sorted(found, key=lambda s: s.get("created") or 0, reverse=True)


def _base_from_cache(store_root: Path, key: str) -> tuple[dict, list[str]] | None:
    """Base scores and outputs of an earlier evaluation with the same base key (any run)."""
    for scores_path in store_root.glob(f"*/eval/*/{SCORES_FILE}"):
        scores = read_scores(scores_path.parent)
        if scores and scores.get("base_key") == key:
            examples = read_examples(scores_path.parent)
            if len(examples) == scores.get("rows"):
                return scores["base"], [e.get("base", "") for e in examples]
    return None


# ---- scores -----------------------------------------------------------------------------------

def detect_lang(texts: list[str]) -> str | None:
    return "zh" if any(_CJK.search(t or "") for t in texts) else None


def corpus_scores(predictions: list[str], references: list[str], lang: str | None = None,
                  stem: bool = False) -> dict:
    """ROUGE-1/2/L (0-1) and BLEU (0-100) through studio.metrics, with the tokenization used."""
    from studio import metrics

    lang = lang or detect_lang(references)
    score = getattr(metrics, "score", None)
    if score is not None:
        result = dict(score(predictions, [[r] for r in references], lang=lang, stem=stem))
    else:  # the basic metrics module
        result = {**metrics.rouge(predictions, references), "bleu": metrics.bleu(predictions, references),
                  "tokenization": "zh" if lang else "13a"}
    return {k: result.get(k) for k in ("rouge1", "rouge2", "rougeL", "bleu", "tokenization")}


def example_scores(predictions: list[str], references: list[str], lang: str | None = None,
                   stem: bool = False) -> list[dict]:
    """Per-example ROUGE-L (0-1) and sentence BLEU (0-100)."""
    from studio import metrics

    lang = lang or detect_lang(references)
    per_example = getattr(metrics, "per_example", None)
    if per_example is not None:
        try:
            rows = per_example(predictions, [[r] for r in references], lang=lang, stem=stem)
            return [{"rougeL": r.get("rougeL"), "bleu": r.get("bleu")} for r in rows]
        except TypeError:
            pass
    import sacrebleu

    tokenize = "zh" if lang else "13a"
    out = []
    for pred, ref in zip(predictions, references):
        rouge_l = metrics.rouge([pred], [ref])["rougeL"]
        out.append({"rougeL": rouge_l, "bleu": sacrebleu.sentence_bleu(pred, [ref], tokenize=tokenize).score})
    return out


def tokenization_msg(tokenization: str | None) -> Msg:
    """How texts were split for scoring, in words for the page."""
    from studio import metrics

    note = getattr(metrics, "tokenization_note", None)
    if note is not None and tokenization in ("words", "characters"):
        return note(tokenization)
    text = (tokenization or "").lower()
    return Msg("evaluate.tokenized_chars" if "char" in text or text == "zh" else "evaluate.tokenized_words")


# ---- the work: one run, its test set and optional general set -------------------------------

@dataclass
class Part:
    """One test set to evaluate a run on, and where its results go."""

    role: str  # 'test' or 'general'
    test: TestSet
    key: str
    base_key: str
    folder: Path


class EvalJob(Run):
    """The job manager's handle for an evaluation: status and log in the eval folder; the id
    names the run it evaluates, so a refused Start reads 'run …/eval'."""

    def __init__(self, folder: Path, run: Run):
        super().__init__(Path(folder))
        self.of_run = run

    @property
    def id(self) -> str:  # type: ignore[override]
        return f"{self.of_run.id}/eval"


def _load_base(target: Target):
    from studio.generation import load_model_for_eval

    try:
        return load_model_for_eval(target.base, target.trust_remote_code)
    except OSError:
        raise UserError("evaluate.base_missing", run=target.run.id, model=target.base_name) from None


def _evaluate_model(model, tokenizer, test: TestSet, settings: GenerationSettings, advance, stop_event):
    """(outputs, {eval_loss, perplexity, tokens}) or None when stopped."""
    from studio.generation import generate_batched, reference_loss

    n = len(test.prompts)
    outputs = generate_batched(model, tokenizer, test.prompts, settings, stop_event=stop_event,
                               tools=test.tools, on_batch=lambda done: advance(done, "generate"))
    if outputs is None:
        return None
    loss = reference_loss(model, tokenizer, test.prompts, test.references, settings.batch_size,
                          stop_event=stop_event, tools=test.tools, on_batch=lambda done: advance(n + done, "loss"))
    if loss is None:
        return None
    value, tokens = loss
    return outputs, {"eval_loss": value, "perplexity": perplexity(value), "answer_tokens": tokens}


def make_work(target: Target, parts: list[Part], settings: GenerationSettings, stem: bool = False):
    """The job manager work function evaluating `target` on `parts`: base first, then fine-tuned."""

    def work(job: Run, stop_event: threading.Event) -> dict:
        import torch

        started = time.time()
        base_done: dict[str, tuple] = {}
        for part in parts:
            cached = _base_from_cache(target.run.path.parent, part.base_key)
            if cached is not None:
                base_done[part.key] = cached
        # progress units: examples × (generation + loss) per model still to run
        units = sum(2 * len(p.test.prompts) * (1 if p.key in base_done else 2) for p in parts)
        state = {"done": 0, "last": 0.0}

        def step(which: str, part: Part):
            offset = state["done"]

            def advance(done: int, stage: str):
                now = time.time()
                if now - state["last"] > 0.5 or offset + done >= units:
                    state["last"] = now
                    job.update_status(step=offset + done, total_steps=units, phase=f"{which}:{stage}",
                                      message=Msg(PHASES[which, stage], run=target.run.id,
                                                  data=part.test.label))
            return advance

        job.update_status(phase="loading", message=Msg("evaluate.phase_loading", run=target.run.id),
                          training_started_at=started, step=0, total_steps=units)
        model, tokenizer = _load_base(target)
        results: dict[str, dict] = {}
        try:
            for part in parts:
                if part.key in base_done:
                    scores, outputs = base_done[part.key]
                    results[part.key] = {"base": dict(scores), "base_outputs": outputs, "base_reused": True}
                    continue
                got = _evaluate_model(model, tokenizer, part.test, settings, step("base", part), stop_event)
                state["done"] += 2 * len(part.test.prompts)
                if got is None:
                    return {"message": Msg("evaluate.stopped")}
                outputs, loss = got
                results[part.key] = {"base": {**corpus_scores(outputs, part.test.references, stem=stem), **loss},
                                     "base_outputs": outputs}
            if target.kind == "adapter":
                from studio.generation import attach_adapter

                model = attach_adapter(model, target.output)
            else:
                del model
                gc.collect()
                from studio.generation import load_model_for_eval

                model, tokenizer = load_model_for_eval(target.output, target.trust_remote_code)
            for part in parts:
                got = _evaluate_model(model, tokenizer, part.test, settings, step("tuned", part), stop_event)
                state["done"] += 2 * len(part.test.prompts)
                if got is None:
                    return {"message": Msg("evaluate.stopped")}
                outputs, loss = got
                results[part.key]["tuned"] = {**corpus_scores(outputs, part.test.references, stem=stem), **loss}
                results[part.key]["tuned_outputs"] = outputs
        finally:
            del model
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        job.update_status(phase="scoring", message=Msg("evaluate.phase_scoring", run=target.run.id))
        general = next((p.key for p in parts if p.role == "general"), None)
        for part in parts:
            write_results(target, part, settings, results[part.key], stem, time.time() - started,
                          general_key=general if part.role == "test" else None)
        first = results[parts[0].key]
        return {"message": Msg("evaluate.done", run=target.run.id, base=_fmt(first["base"]["rougeL"]),
                               tuned=_fmt(first["tuned"]["rougeL"])),
                "output": str(parts[0].folder), "step": units, "total_steps": units}

    return work


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def write_results(target: Target, part: Part, settings: GenerationSettings, result: dict, stem: bool,
                  seconds: float, general_key: str | None = None) -> dict:
    """scores.json + examples.jsonl in the part's folder (written last, so a stopped or failed
    evaluation never leaves a cache entry)."""
    test = part.test
    lang = detect_lang(test.references)
    base_rows = example_scores(result["base_outputs"], test.references, lang, stem)
    tuned_rows = example_scores(result["tuned_outputs"], test.references, lang, stem)
    lines = []
    for i, ref in enumerate(test.references):
        lines.append(json.dumps({
            "prompt": test.prompt_texts[i], "reference": ref,
            "base": result["base_outputs"][i], "tuned": result["tuned_outputs"][i],
            "base_rougeL": base_rows[i]["rougeL"], "base_bleu": base_rows[i]["bleu"],
            "tuned_rougeL": tuned_rows[i]["rougeL"], "tuned_bleu": tuned_rows[i]["bleu"]}, ensure_ascii=False))
    scores = {
        "key": part.key, "base_key": part.base_key, "role": part.role, "run": target.run.id,
        "model": target.base_name, "adapter": str(target.output), "kind": target.kind,
        "data": test.source, "data_label": test.label, "data_hash": test.hash, "rows": len(test.references),
        "skipped": test.skipped, "settings": {**settings.key_dict(), "stem": stem},
        "tokenization": result["tuned"].get("tokenization"), "lang": lang or "en",
        "base": {k: v for k, v in result["base"].items() if k != "tokenization"},
        "tuned": {k: v for k, v in result["tuned"].items() if k != "tokenization"},
        "base_reused": bool(result.get("base_reused")), "seconds": round(seconds, 1), "created": time.time(),
        "general_key": general_key,  # the forgetting check made with it (runs/<id>/eval/<general_key>/)
    }
    part.folder.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(part.folder / EXAMPLES_FILE, "\n".join(lines) + "\n")
    _write_json_atomic(part.folder / SCORES_FILE, scores)
    return scores


# ---- requests, the waiting line, progress -----------------------------------------------------

@dataclass
class Item:
    """One run within a request."""

    run_id: str
    parts: list[Part] = field(default_factory=list)
    target: Target | None = None
    state: str = "waiting"  # waiting · running · completed · cached · stopped · failed
    message: Msg | None = None
    job: EvalJob | None = None

    def keys(self) -> dict[str, str]:
        return {p.role: str(p.folder) for p in self.parts}


@dataclass
class Request:
    id: str
    items: list[Item]
    settings: GenerationSettings
    stem: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    started: float = field(default_factory=time.time)


class Evaluator:
    """Evaluation requests of one studio home, run one after another through its job manager."""

    def __init__(self, jobs, home: Path, resolve_path=None):
        self.jobs = jobs
        self.home = Path(home)
        self.resolve_path = resolve_path or (lambda text, kind: text)
        self._requests: dict[str, Request] = {}
        self._lock = threading.Lock()

    # -- starting --

    def prepare(self, run_ids: list[str], data: str | None = "test", settings: GenerationSettings | None = None,
                general: str | None = None, stem: bool = False, max_rows: int = 0,
                general_rows: int = DEFAULT_GENERAL_ROWS) -> Request:
        """Check everything and work out each run's keys; UserError on bad input. Nothing runs."""
        settings = settings or GenerationSettings()
        settings.check()
        if not 0 <= int(max_rows) <= 10**9:
            raise UserError("evaluate.bad_max_rows", key="evaluate.max_rows", value=max_rows)
        run_ids = [r for r in dict.fromkeys(run_ids or []) if r]
        if not run_ids:
            raise UserError("evaluate.no_runs")
        data = (data or "test").strip()
        if data != "test" and not data.startswith("library:"):
            data = self.resolve_path(data, "data")
        if general:
            general = general.strip()
            if not general.startswith("library:"):
                general = self.resolve_path(general, "data")
        shared_test = None if data == "test" else load_test_set(None, data, self.home, max_rows)
        shared_general = load_test_set(None, general, self.home, general_rows) if general else None
        items = []
        for run_id in run_ids:
            try:
                run = self.jobs.store.get(run_id)
            except KeyError:
                raise UserError("evaluate.unknown_run", run=str(run_id)[:80]) from None
            target = target_for(run)
            item = Item(run_id, target=target)
            sets = [("test", shared_test or load_test_set(run, "test", self.home, max_rows))]
            if shared_general is not None:
                sets.append(("general", shared_general))
            for role, test in sets:
                key = eval_key(target, test, settings)
                item.parts.append(Part(role, test, key, base_key(target, test, settings), run.path / "eval" / key))
            items.append(item)
        return Request(secrets.token_hex(6), items, settings, stem)

    def start(self, run_ids: list[str], data: str | None = "test", settings: GenerationSettings | None = None,
              general: str | None = None, stem: bool = False, max_rows: int = 0,
              general_rows: int = DEFAULT_GENERAL_ROWS) -> Request:
        """Check the request, then evaluate in the background (cached parts are not redone)."""
        request = self.prepare(run_ids, data, settings, general, stem, max_rows, general_rows)
        for item in request.items:
            if all(read_scores(p.folder) is not None for p in item.parts):
                item.state, item.message = "cached", Msg("evaluate.cached", run=item.run_id)
            else:  # until its turn comes, a request says it is about to start (never an empty card)
                item.message = Msg("evaluate.starting", run=item.run_id)
        with self._lock:
            self._requests[request.id] = request
        request.thread = threading.Thread(target=self._serve, args=(request,), name=f"eval-{request.id}",
                                          daemon=True)
        request.thread.start()
        return request

    def _serve(self, request: Request) -> None:
        for item in request.items:
            if item.state == "cached":
                continue
            if request.stop.is_set():
                item.state, item.message = "stopped", Msg("evaluate.stopped")
                continue
            try:
                self._run_item(request, item)
            except Exception as exc:  # never let the waiting line die with a traceback
                item.state, item.message = "failed", explain(exc)

    def _run_item(self, request: Request, item: Item) -> None:
        todo = [p for p in item.parts if read_scores(p.folder) is None]
        job = EvalJob(todo[0].folder, item.target.run)
        job.path.mkdir(parents=True, exist_ok=True)
        while True:
            if request.stop.is_set():
                item.state, item.message = "stopped", Msg("evaluate.stopped")
                return
            active = self.jobs.active_run()
            if active is not None:
                item.state, item.message = "waiting", Msg("evaluate.waiting_for", run=active.id)
                time.sleep(0.5)
                continue
            try:
                self.jobs.submit(job, make_work(item.target, todo, request.settings, request.stem))
                break
            except UserError:  # someone started a run between the check and the submit
                time.sleep(0.5)
        item.job, item.state, item.message = job, "running", Msg("evaluate.running", run=item.run_id)
        while self.jobs.active_run() is job:
            self.jobs.wait(0.5)
        status = job.status()
        state = status.get("state")
        item.state = state if state in ("completed", "stopped", "failed") else "failed"
        if item.state == "completed" and any(read_scores(p.folder) is None for p in item.parts):
            item.state = "stopped"
        item.message = Msg.from_dict(status["message_msg"]) if status.get("message_msg") else Msg("evaluate.stopped")

    # -- following --

    def get(self, request_id: str) -> Request | None:
        with self._lock:
            return self._requests.get(request_id or "")

    def stop(self, request_id: str) -> None:
        """Stop a request: the running evaluation stops after its batch; waiting runs never start."""
        request = self.get(request_id)
        if request is None:
            return
        request.stop.set()
        for item in request.items:
            if item.state == "running" and item.job is not None and self.jobs.active_run() is item.job:
                self.jobs.stop()

    def wait(self, request_id: str, timeout: float | None = None) -> None:
        request = self.get(request_id)
        if request and request.thread:
            request.thread.join(timeout)

    def status(self, request_id: str) -> dict:
        """{"state", "fraction", "message" (Msg), "items": [{"run", "state", "message"}]}."""
        request = self.get(request_id)
        if request is None:
            return {"state": "none", "fraction": 0.0, "message": None, "items": []}
        shares, message, running = [], None, False
        for item in request.items:
            if item.state in ("completed", "cached"):
                shares.append(1.0)
            elif item.state == "running" and item.job is not None:
                progress = item.job.progress()
                shares.append(progress["fraction"])
                message = Msg.from_dict(progress["message_msg"]) if progress.get("message_msg") else item.message
                running = True
            else:
                shares.append(0.0)
                if item.state == "waiting":
                    running = True
                    message = message or item.message
        alive = request.thread is not None and request.thread.is_alive()
        states = {i.state for i in request.items}
        if alive or running:
            state = "running" if any(i.state == "running" for i in request.items) else "waiting"
        elif states & {"failed"}:
            state = "failed"
        elif states & {"stopped"}:
            state = "stopped"
        else:
            state = "completed"
        if state in ("failed", "stopped", "completed"):
            bad = next((i for i in request.items if i.state in ("failed", "stopped")), None)
            message = bad.message if bad else Msg("evaluate.all_done", n=len(request.items))
        return {"state": state, "fraction": sum(shares) / max(1, len(shares)), "message": message,
                "items": [{"run": i.run_id, "state": i.state, "message": i.message, "folders": i.keys()}
                          for i in request.items]}

    def results(self, request_id: str) -> list[dict]:
        """[{"run", "test": scores | None, "general": scores | None, "test_folder": str}] per run."""
        request = self.get(request_id)
        return [] if request is None else results_of(request.items)


def results_of(items: list[Item]) -> list[dict]:
    out = []
    for item in items:
        entry = {"run": item.run_id, "test": None, "general": None, "test_folder": None}
        for part in item.parts:
            entry[part.role] = read_scores(part.folder)
            if part.role == "test":
                entry["test_folder"] = str(part.folder)
        out.append(entry)
    return out


_evaluators: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def evaluator(jobs, home: Path, resolve_path=None) -> Evaluator:
    """The Evaluator of this job manager (one waiting line per device)."""
    found = _evaluators.get(jobs)
    if found is None:
        found = _evaluators[jobs] = Evaluator(jobs, home, resolve_path)
    return found


def evaluate_now(jobs, run_id: str, data: str | None = None, settings: GenerationSettings | None = None,
                 general: str | None = None, stem: bool = False, max_rows: int = 0) -> tuple[dict, dict]:
    """Evaluate one run and wait (the CLI): (status, results entry). Ctrl-C stops it cleanly."""
    ev = evaluator(jobs, jobs.store.root.parent)
    request = ev.start([run_id], data or "test", settings, general, stem, max_rows)
    try:
        while request.thread.is_alive():
            request.thread.join(0.5)
    except KeyboardInterrupt:
        ev.stop(request.id)
        ev.wait(request.id)
    return ev.status(request.id), ev.results(request.id)[0]


# ---- reading results for people --------------------------------------------------------------

def change(base, tuned) -> tuple[float | None, float | None]:
    """(tuned - base, relative change in %); None where a side is missing or the base is 0."""
    if not isinstance(base, (int, float)) or not isinstance(tuned, (int, float)):
        return None, None
    if not (math.isfinite(base) and math.isfinite(tuned)):
        return None, None
    diff = tuned - base
    return diff, (diff / abs(base) * 100 if base else None)


def comparison_rows(scores: dict | None) -> list[dict]:
    """One row per metric: {"metric", "base", "tuned", "change", "pct", "better"} (None = n/a)."""
    rows = []
    for metric in METRICS:
        base = (scores or {}).get("base", {}).get(metric)
        tuned = (scores or {}).get("tuned", {}).get(metric)
        diff, pct = change(base, tuned)
        better = None if diff is None else (diff < 0 if metric in LOWER_IS_BETTER else diff > 0)
        rows.append({"metric": metric, "base": base, "tuned": tuned, "change": diff, "pct": pct,
                     "better": better})
    return rows


def forgetting_verdict(general: dict | None) -> Msg | None:
    """Did general ability drop? Compared on the general set: ROUGE-L and perplexity of the
    references, each with a 5 % tolerance (noise on small sets; ROUGE-L also 0.01 at least)."""
    if not general:
        return None
    base, tuned = general.get("base", {}), general.get("tuned", {})
    dropped = []
    rl_b, rl_t = base.get("rougeL"), tuned.get("rougeL")
    if (isinstance(rl_b, (int, float)) and isinstance(rl_t, (int, float))
            and rl_b - rl_t > max(rl_b * FORGETTING_TOLERANCE, FORGETTING_MIN_ROUGE)):
        dropped.append("ROUGE-L")
    pp_b, pp_t = base.get("perplexity"), tuned.get("perplexity")
    if isinstance(pp_b, (int, float)) and isinstance(pp_t, (int, float)) and pp_t > pp_b * (1 + FORGETTING_TOLERANCE):
        dropped.append("perplexity")
    data = general.get("data_label") or general.get("data")
    numbers = dict(rouge_base=_fmt(rl_b), rouge_tuned=_fmt(rl_t), ppl_base=_fmt(pp_b, 2), ppl_tuned=_fmt(pp_t, 2),
                   data=data)
    if dropped:
        return Msg("evaluate.forgetting_dropped", which=", ".join(dropped), **numbers)
    return Msg("evaluate.forgetting_held", **numbers)


def _tokens(text: str) -> list[str]:
    """Words and the spaces between them; each CJK character is a word of its own."""
    return re.findall(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]|[^\s\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+|\s+",
                      text or "")


def word_diff(reference: str, output: str) -> list[tuple[str, str | None]]:
    """Word-level diff of an output against the reference, for gr.HighlightedText: (text, None)
    where they agree, (text, '+') for words only in the output, (text, '-') for words of the
    reference the output lacks. Plain text pieces, never markup."""
    ref, out = _tokens(reference), _tokens(output)
    pieces: list[tuple[str, str | None]] = []
    matcher = difflib.SequenceMatcher(a=ref, b=out, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            pieces.append(("".join(out[b0:b1]), None))
            continue
        if op in ("replace", "delete"):
            pieces.append(("".join(ref[a0:a1]), "-"))
        if op in ("replace", "insert"):
            pieces.append(("".join(out[b0:b1]), "+"))
    merged: list[tuple[str, str | None]] = []
    for text, label in pieces:
        if merged and merged[-1][1] == label:
            merged[-1] = (merged[-1][0] + text, label)
        elif text:
            merged.append((text, label))
    return merged


def human_score(home: Path, run_id: str, base_names: tuple[str, ...] = ()) -> dict | None:
    """Blind A/B votes between this run and its base (`<home>/arena/votes.jsonl`, Chat tab):
    {"votes", "wins", "losses", "ties", "both_bad", "win_rate"} with ties as half a win; None
    without votes for the pair."""
    path = Path(home) / "arena" / "votes.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    bases = {"base", "demo", *base_names}

    def side(model) -> str | None:
        model = str(model or "")
        if run_id and run_id in model:
            return "tuned"
        if model in bases or model.startswith("base"):
            return "base"
        return None

    counts = {"wins": 0, "losses": 0, "ties": 0, "both_bad": 0}
    for line in lines:
        try:
            vote = json.loads(line)
        except ValueError:
            continue
        if not isinstance(vote, dict):
            continue
        sides = {"a": side(vote.get("a")), "b": side(vote.get("b"))}
        if set(sides.values()) != {"tuned", "base"}:
            continue
        winner = vote.get("winner")
        if winner in ("a", "b"):
            counts["wins" if sides[winner] == "tuned" else "losses"] += 1
        elif winner == "tie":
            counts["ties"] += 1
        elif winner == "both_bad":
            counts["both_bad"] += 1
    votes = sum(counts.values())
    if not votes:
        return None
    decided = counts["wins"] + counts["losses"] + counts["ties"]
    rate = (counts["wins"] + 0.5 * counts["ties"]) / decided if decided else None
    return {"votes": votes, **counts, "win_rate": rate}


def latest_summary(run: Run, lang: str | None = None) -> str:
    """The Runs tab's cell: 'ROUGE-L 0.06 → 0.70' of the newest evaluation on the test role."""
    for scores in run_evaluations(run):
        if scores.get("role", "test") == "test":
            base, tuned = scores["base"].get("rougeL"), scores["tuned"].get("rougeL")
            return render(Msg("evaluate.runs_cell", base=_fmt(base, 2), tuned=_fmt(tuned, 2)), lang)
    return ""
