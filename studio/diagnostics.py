"""Live diagnostics: the fine-tuning guides' troubleshooting table, applied while a run trains.

    watcher = Watcher(run, cfg, plan, n_params=…)   # RunRecorder builds one at train begin
    watcher.feed(event)                             # every metrics event; returns what it raised
    record_failure(run, exc)                        # a job that raised: OOM -> event + memory freed
    diagnostic_events(events)                       # the diagnostic lines among metrics events

A diagnosis is an EVENT IN THE RUN FOLDER, appended to metrics.jsonl beside the metrics:
`{"t", "step", "diagnostic": code, "severity": "warning"|"error", "message": Msg dict, "fix": Msg dict}`
plus the metric keys (loss, eval_loss, ...) as null, so the CLI prints it as it comes, the Train
tab reads it from the folder (reload-safe), and readers of metrics, which look for numeric
values, pass over it.

The rules are pure functions on lists of numbers (unit-tested on synthetic series); the Watcher
only collects the series and raises each diagnosis at most once, or again after it cleared.
NaN/inf are reported as they are, never smoothed.
"""

from __future__ import annotations

import gc
import math
import statistics
import time

from studio.i18n import Msg

# --- thresholds (each a rough rule of thumb; the comment says why) ---------------------------
# Overfitting: eval loss must rise at this many consecutive evaluations: one rise is noise,
# two in a row while training loss falls is the guides' textbook picture.
OVERFIT_RISES = 2
# ... each rise above this relative amount (evaluation on a fixed set still wobbles a little) ...
OVERFIT_STEP_NOISE = 0.002
# ... and in all at least this far above the best eval loss seen, so a flat plateau never fires.
OVERFIT_MIN_RISE = 0.02
# Flat loss: judged on at least this many training-loss points after warmup (fewer is noise).
FLAT_MIN_POINTS = 10
# ... by the straight line fitted through them: a fall below 1 % of where it starts is "not
# falling" (a healthy start drops by far more) ...
FLAT_MIN_DROP = 0.01
# ... and so is a drop within two standard errors: each batch's loss differs (different rows),
# and a loss that only wobbles must not pass for one that falls.
FLAT_NOISE_SE = 2.0
# Spike: a loss this many times the median of the recent losses is no longer noise ...
SPIKE_FACTOR = 2.0
# ... judged against this many recent losses (and only once that many are there).
SPIKE_WINDOW = 8
# A raised diagnosis can be raised again only after its rule held false this many times in a row,
# so a wobbling series does not repeat the same sentence at every log.
CLEAR_AFTER = 5
# Throughput: a FLOP-based expectation means nothing for small models (per-step overhead
# dominates), so only models at least this large are judged.
SLOW_MIN_PARAMS = 100_000_000
# Sustained training FLOP/s a device should reach with mixed precision: a modest GPU (T4-class,
# well under an A100/H100) and a few CPU cores. Conservative on purpose: "far below" this means
# something is wrong, not that the GPU is not the newest.
DEVICE_FLOPS = {"cuda": 20e12, "cpu": 2e11}
# Fire only when the measured speed is below this share of the expectation.
SLOW_SHARE = 0.1
# Speeds judged: the median of this many readings, skipping the first (warm-up, compilation).
SLOW_POINTS = 5

UNSTABLE_FIX = Msg("diag.unstable_fix")
# Logged steps in a row with a gradient norm of exactly 0 (after one above 0) and an unmoving loss:
# the weights blew up and saturated instead of overflowing to NaN (bf16 autocast does this: the
# activations overflow, the norm layers zero them, every prediction turns uniform).
COLLAPSE_STEPS = 3
# The numeric keys of a metrics event (studio.recorder); null in a diagnostic line.
METRIC_KEYS = ("epoch", "loss", "eval_loss", "learning_rate", "grad_norm", "tokens", "tokens_per_s")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- the rules: pure functions ----------------------------------------------------------------

def is_not_finite(value) -> bool:
    """NaN or ±inf (as a float or as the string metrics.jsonl stores them as)."""
    if isinstance(value, str):
        return value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity")
    return isinstance(value, float) and not math.isfinite(value)


def is_overfitting(evals: list[float], trains_between: list[float]) -> bool:
    """Eval losses (in order) rose at the last OVERFIT_RISES evaluations, beyond noise, while the
    training losses logged over those evaluations (in order) fell."""
    evals = [v for v in evals if _finite(v)]
    if len(evals) < OVERFIT_RISES + 1:
        return False
    tail = evals[-(OVERFIT_RISES + 1):]
    rising = all(b > a * (1 + OVERFIT_STEP_NOISE) for a, b in zip(tail, tail[1:]))
    if not rising or tail[-1] <= min(evals) * (1 + OVERFIT_MIN_RISE):
        return False
    trains = [v for v in trains_between if _finite(v)]
    if len(trains) < 2:
        return False
    half = len(trains) // 2
    return statistics.median(trains[half:]) < statistics.median(trains[:max(half, 1)])


def is_flat(losses: list[float]) -> bool:
    """Training losses after warmup (in order) have not fallen: the straight line fitted through
    them falls by less than FLAT_MIN_DROP of where it starts, or by no more than its own
    uncertainty (FLAT_NOISE_SE standard errors of the fall, from the scatter around the line:
    each batch's loss differs). A loss that fell fast scatters widely but along a steep line, so it
    is not flat; one that fell and then plateaued is not flat either."""
    losses = [v for v in losses if _finite(v)]
    n = len(losses)
    if n < FLAT_MIN_POINTS:
        return False
    xs = range(n)
    slope, intercept = statistics.linear_regression(xs, losses)
    residuals = [y - (intercept + slope * x) for x, y in zip(xs, losses)]
    spread = math.sqrt(sum(r * r for r in residuals) / (n - 2))
    x_mean = (n - 1) / 2
    slope_se = spread / math.sqrt(sum((x - x_mean) ** 2 for x in xs))
    fall, fall_se = -slope * (n - 1), slope_se * (n - 1)
    return fall < max(FLAT_MIN_DROP * abs(intercept), FLAT_NOISE_SE * fall_se)


def is_collapsed(points: list[tuple[float | None, float | None]]) -> bool:
    """(grad_norm, loss) of the logged steps so far, in order: the last COLLAPSE_STEPS have a
    gradient norm of exactly 0 and the same positive loss, after a step whose gradient was not 0.
    (A batch without trained tokens has loss 0 and no gradient: that is not a collapse.)"""
    if len(points) <= COLLAPSE_STEPS:
        return False
    last = points[-COLLAPSE_STEPS:]
    losses = [loss for _, loss in last]
    if any(grad != 0.0 or not _finite(loss) or loss <= 0 for grad, loss in last):
        return False
    same = max(losses) - min(losses) <= 1e-5 * abs(losses[0])
    return same and any(_finite(grad) and grad > 0 for grad, _ in points[:-COLLAPSE_STEPS])


def spike_median(recent: list[float], value: float) -> float | None:
    """The recent median when `value` is a spike far above it, else None."""
    recent = [v for v in recent if _finite(v)][-SPIKE_WINDOW:]
    if len(recent) < SPIKE_WINDOW or not _finite(value):
        return None
    median = statistics.median(recent)
    return median if median > 0 and value > SPIKE_FACTOR * median else None


def expected_tokens_per_s(device: str, n_params: int | None, trainable: int | None = None) -> float | None:
    """A rough speed this device should reach for a model of n_params, or None when not judged.

    Training costs about 6 FLOPs per parameter per token (forward 2, backward 4); with frozen
    weights (adapters) the weight gradients are skipped, about 4."""
    if not n_params or n_params < SLOW_MIN_PARAMS or device not in DEVICE_FLOPS:
        return None
    per_token = (6 if trainable and trainable >= 0.5 * n_params else 4) * n_params
    return DEVICE_FLOPS[device] / per_token


def is_slow(speeds: list[float], expected: float | None) -> float | None:
    """The measured speed (median of recent readings) when far below `expected`, else None."""
    speeds = [v for v in speeds[1:] if _finite(v) and v > 0]  # the first includes warm-up
    if expected is None or len(speeds) < SLOW_POINTS:
        return None
    speed = statistics.median(speeds[-SLOW_POINTS:])
    return speed if speed < SLOW_SHARE * expected else None


def slow_fix(device: str, precision: str | None, packing: bool) -> Msg:
    """What to try for a slow run: mixed precision on a GPU in fp32, else less padding."""
    if device == "cuda" and precision in (None, "fp32"):
        return Msg("diag.slow_fix_precision")
    if not packing:
        return Msg("diag.slow_fix_padding")
    return Msg("diag.slow_fix_general")


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError, 'CUDA out of memory', a CPU allocation failure, or MemoryError."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text or "cannot allocate memory" in text


# --- events -------------------------------------------------------------------------------------

def diagnostic_event(code: str, severity: str, step, message: Msg, fix: Msg | None = None) -> dict:
    """The metrics.jsonl line of one diagnosis. It carries the metric keys of the events contract
    as null, so any reader that indexes them (`e["loss"] is not None`) simply skips it."""
    event = {"t": time.time(), "step": step, **dict.fromkeys(METRIC_KEYS),
             "diagnostic": code, "severity": severity, "message": message.to_dict()}
    if fix is not None:
        event["fix"] = fix.to_dict()
    return event


def diagnostic_events(events: list[dict]) -> list[dict]:
    return [e for e in events if isinstance(e, dict) and e.get("diagnostic")]


def _fmt(value) -> str:
    """Numbers in a sentence: 4 significant digits, NaN/inf as they are."""
    if isinstance(value, float):
        return str(value) if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def free_memory() -> None:
    """Give back what a failed job held: Python garbage, and the CUDA cache when there is one."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # freeing memory must never turn into a second failure
        pass


def record_failure(run, exc: BaseException) -> None:
    """After a job raised: free memory; on out-of-memory also write the diagnosis with its advice."""
    free_memory()
    if not is_out_of_memory(exc):
        return
    try:
        step = run.status().get("step") or 0
        run.append_metric(diagnostic_event("out_of_memory", "error", step, Msg("diag.out_of_memory"),
                                           Msg("diag.out_of_memory_fix")))
    except Exception:  # the job's lifecycle must still reach its final state
        pass


class Watcher:
    """Feeds each metrics event to the rules and appends each new diagnosis to the run folder."""

    def __init__(self, run, cfg=None, plan: dict | None = None, n_params: int | None = None,
                 trainable: int | None = None, warmup_steps: int = 0):
        self.run = run
        self.cfg = cfg
        self.plan = plan or {}
        self.warmup_steps = warmup_steps
        self.expected = expected_tokens_per_s(self.plan.get("device", ""), n_params, trainable)
        self.train: list[tuple[int, float]] = []   # (step, loss) as logged, NaN included
        self.evals: list[tuple[int, float]] = []
        self.speeds: list[float] = []
        self.grads: list[tuple[float | None, float | None]] = []  # (grad_norm, loss) of each train step
        self.active: dict[str, int] = {}           # raised code -> consecutive checks it held false
        # A resumed run keeps what it already said (at most once per run).
        for event in diagnostic_events(run.read_metrics()) if run is not None else []:
            self.active[event["diagnostic"]] = 0

    def _check(self, code: str, holds: bool) -> bool:
        """True when `code` should be raised now; keeps the raised/cleared bookkeeping."""
        if holds:
            if code in self.active:
                self.active[code] = 0
                return False
            self.active[code] = 0
            return True
        if code in self.active:
            self.active[code] += 1
            if self.active[code] >= CLEAR_AFTER:
                del self.active[code]
        return False

    def _eval_falling(self) -> bool:
        """The eval loss fell since the first evaluation (beyond FLAT_MIN_DROP): the model learns,
        whatever a noisy training loss (small batches, DPO's pairs) looks like."""
        evals = [v for _, v in self.evals]
        return len(evals) >= 2 and evals[-1] < evals[0] * (1 - FLAT_MIN_DROP)

    def feed(self, event: dict) -> list[dict]:
        """Apply every rule the event touches; append and return the diagnostic events raised."""
        if event.get("diagnostic"):
            return []
        step = event.get("step") or 0
        raised = []
        for key in ("loss", "eval_loss"):
            value = event.get(key)
            if is_not_finite(value) and self._check("not_finite", True):
                metric = Msg("train.metric_loss" if key == "loss" else "train.metric_eval_loss")
                raised.append(diagnostic_event("not_finite", "error", step,
                                               Msg("diag.not_finite", metric=metric, value=str(value), step=step),
                                               UNSTABLE_FIX))
        loss = event.get("loss")
        if loss is not None:
            self.grads.append((event.get("grad_norm"), loss))
            if self._check("collapsed", is_collapsed(self.grads)):
                raised.append(diagnostic_event("collapsed", "error", step,
                                               Msg("diag.collapsed", n=COLLAPSE_STEPS, loss=_fmt(loss)),
                                               UNSTABLE_FIX))
        if _finite(loss):
            median = spike_median([v for _, v in self.train], loss)
            if self._check("spike", median is not None):
                raised.append(diagnostic_event("spike", "warning", step,
                                               Msg("diag.spike", loss=_fmt(loss), step=step, median=_fmt(median)),
                                               UNSTABLE_FIX))
            self.train.append((step, float(loss)))
            after = [v for s, v in self.train if s > self.warmup_steps]
            if self._check("flat_loss", is_flat(after) and not self._eval_falling()):
                lr = self.cfg.train.learning_rate if self.cfg is not None else event.get("learning_rate")
                raised.append(diagnostic_event("flat_loss", "warning", step,
                                               Msg("diag.flat_loss", steps=len(after), loss=_fmt(loss)),
                                               Msg("diag.flat_loss_fix", lr=_fmt(lr))))
        eval_loss = event.get("eval_loss")
        if _finite(eval_loss):
            self.evals.append((step, float(eval_loss)))
            since = self.evals[-(OVERFIT_RISES + 1)][0] if len(self.evals) > OVERFIT_RISES else step
            between = [v for s, v in self.train if s >= since]
            if self._check("overfitting", is_overfitting([v for _, v in self.evals], between)):
                best = min(v for _, v in self.evals)
                raised.append(diagnostic_event("overfitting", "warning", step,
                                               Msg("diag.overfitting", best=_fmt(best), now=_fmt(eval_loss),
                                                   evals=OVERFIT_RISES),
                                               Msg("diag.overfitting_fix")))
        speed = event.get("tokens_per_s")
        if _finite(speed) and self.expected is not None:
            self.speeds.append(float(speed))
            measured = is_slow(self.speeds, self.expected)
            if self._check("slow", measured is not None):
                # Packing and padding-free batches (CPU SFT runs) leave no padding to cut.
                packing = bool(self.cfg and getattr(self.cfg.train, "packing", False)) or bool(
                    self.plan.get("padding_free"))
                raised.append(diagnostic_event("slow", "warning", step,
                                               Msg("diag.slow", speed=f"{measured:.0f}", expected=f"{self.expected:.0f}"),
                                               slow_fix(self.plan.get("device", ""), self.plan.get("precision"), packing)))
        for diag in raised:
            try:
                self.run.append_metric(diag)
            except OSError:  # a full disk must not stop training over a warning
                pass
        return raised


def watcher_for(run, args, state, model=None) -> Watcher | None:
    """The Watcher of a trainer's run, from its TrainingArguments and model (RunRecorder calls it
    at train begin). None when the run's config cannot be read (the rules then stay quiet)."""
    try:
        cfg = run.config()
    except Exception:
        cfg = None
    device = getattr(getattr(args, "device", None), "type", "cpu")
    precision = "bf16" if getattr(args, "bf16", False) else "fp16" if getattr(args, "fp16", False) else "fp32"
    n_params = trainable = None
    if model is not None:
        try:
            n_params = sum(p.numel() for p in model.parameters())
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        except Exception:
            pass
    try:
        warmup = int(args.get_warmup_steps(state.max_steps)) if state.max_steps > 0 else 0
    except Exception:
        warmup = 0
    return Watcher(run, cfg, {"device": device, "precision": precision}, n_params, trainable, warmup)
