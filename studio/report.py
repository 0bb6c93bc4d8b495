"""A run's training report as one figure (PNG or PDF, by the file's suffix), drawn with matplotlib.

    training_report(run, "report.png", lang="zh")   # -> Path of the written file
    fig = build_figure(run, lang="en")              # the matplotlib Figure, for tests and pages

Four panels from the run's metrics.jsonl — training loss, evaluation loss, learning rate, and the
two losses together — then the run's key settings and, when the run was evaluated
(`run/eval/<key>/scores.json` with {"base": {metric: value}, "tuned": {metric: value}}, written
by studio/evaluate.py), the before/after table of the newest evaluation.

A run stopped at step 1, a run with no metrics at all, and NaN/inf losses all still render: an
empty panel says so, and NaN/inf values are drawn as red crosses on the top edge of their panel
(counted in the legend), never dropped silently. Titles and labels are in `lang` (en or zh); text
falls back per glyph to an installed CJK font (Noto Sans CJK, WenQuanYi, ...) so Chinese titles
and Chinese file names render; without one the report is still written.

The figure is built on matplotlib's object API (no pyplot), so drawing from the server's
worker threads never touches a GUI backend or pyplot's global figure list.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

from studio.errors import UserError
from studio.i18n import language, t

SUFFIXES = (".png", ".pdf")
# Installed CJK fonts tried in this order (Simplified Chinese forms first).
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
             "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback", "Microsoft YaHei",
             "SimHei", "PingFang SC", "Noto Sans CJK JP", "Noto Serif CJK SC")
METRIC_ORDER = ("rouge1", "rouge2", "rougeL", "bleu", "eval_loss", "perplexity")
METRIC_NAMES = {"rouge1": "scores.metric.rouge1", "rouge2": "scores.metric.rouge2",
                "rougeL": "scores.metric.rouge_l", "bleu": "scores.metric.bleu",
                "eval_loss": "scores.metric.eval_loss", "perplexity": "scores.metric.perplexity"}
PANEL = "panel"  # the label of the four plot axes (tests count them)

_rc_lock = threading.Lock()  # rc_context changes matplotlib's global settings while it draws


def cjk_font() -> str | None:
    """The name of an installed font with Chinese glyphs, or None."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in names), None)


def _fonts(lang: str) -> list[str]:
    cjk = cjk_font()
    if cjk is None:
        return ["DejaVu Sans"]
    return [cjk, "DejaVu Sans"] if lang == "zh" else ["DejaVu Sans", cjk]


# ---- what the report shows -------------------------------------------------------------------

def _number(value) -> float | None:
    """A metric value as a float: numbers as they are, "nan"/"inf" strings (how runs.py writes
    non-finite values to JSON) as NaN/inf, anything else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if not math.isfinite(number) else None  # only NaN/inf arrive as text
    return None


def series(events: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one metric, in step order, non-finite values kept."""
    points = []
    for event in events:
        value, step = _number(event.get(key)), _number(event.get("step"))
        if value is not None and step is not None and math.isfinite(step):
            points.append((step, value))
    points.sort(key=lambda p: p[0])
    return [p[0] for p in points], [p[1] for p in points]


def latest_scores(run) -> dict | None:
    """The newest evaluation of the run (the held-out test set before a general set), or None."""
    found = []
    root = run.path / "eval"
    for path in sorted(root.glob("*/scores.json")) if root.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # half-written or damaged: as if not evaluated
        if isinstance(data, dict) and isinstance(data.get("base"), dict) and isinstance(data.get("tuned"), dict):
            created = data.get("created") if isinstance(data.get("created"), (int, float)) else path.stat().st_mtime
            found.append((data.get("role", "test") == "test", created, data))
    if not found:
        return None
    return max(found, key=lambda f: (f[0], f[1]))[2]


TWO_DECIMALS = ("bleu", "perplexity")  # 0-100 scales; ROUGE (0-1) and losses get four


def _fmt(value, digits: int = 4, sign: str = "") -> str:
    number = _number(value)
    if number is None:
        return "n/a"
    if not math.isfinite(number):
        return str(number)
    return f"{number:{sign}.{digits}f}"


def score_rows(scores: dict, lang: str) -> list[list[str]]:
    """[metric, base, fine-tuned, change (%)] rows, known metrics first."""
    base, tuned = scores.get("base") or {}, scores.get("tuned") or {}
    keys = [k for k in METRIC_ORDER if k in base or k in tuned]
    keys += sorted(k for k in {*base, *tuned} - set(keys)
                   if _number(base.get(k)) is not None or _number(tuned.get(k)) is not None)
    rows = []
    for key in keys:
        before, after = _number(base.get(key)), _number(tuned.get(key))
        digits = 2 if key in TWO_DECIMALS else 4
        change = "n/a"
        if before is not None and after is not None and math.isfinite(before) and math.isfinite(after):
            change = _fmt(after - before, digits, "+")
            if before:
                change += f" ({(after - before) / abs(before) * 100:+.1f}%)"
        name = t(METRIC_NAMES[key], lang) if key in METRIC_NAMES else key
        rows.append([name, _fmt(before, digits), _fmt(after, digits), change])
    return rows


def _short(text, width: int = 70) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width // 2 - 1] + "…" + text[-(width // 2 - 1):]


def settings_rows(run, lang: str, train_losses: list[float] = (), last_step: int = 0) -> list[tuple[str, str]]:
    """(label, value) pairs of the run's key settings and outcome."""
    status = run.status()
    rows = []
    try:
        cfg = run.config()
    except Exception:  # a damaged config.yaml must not stop the report
        rows.append((t("scores.report.settings", lang), t("scores.report.config_unreadable", lang)))
    else:
        batch = str(cfg.train.batch_size)
        if getattr(cfg.train, "grad_accum", 1) > 1:
            batch += f" × {cfg.train.grad_accum}"
        data = getattr(cfg.data, "mix", "") or cfg.data.path
        rows += [(t("scores.report.model", lang), _short(cfg.model.path)),
                 (t("scores.report.method", lang), cfg.method.method),
                 (t("scores.report.epochs", lang), f"{cfg.train.epochs:g}"
                  + (f" (max {cfg.train.max_steps})" if cfg.train.max_steps else "")),
                 (t("scores.report.learning_rate", lang), f"{cfg.train.learning_rate:g}"),
                 (t("scores.report.batch", lang), batch),
                 (t("scores.report.max_length", lang), str(cfg.train.max_length)),
                 (t("scores.report.data", lang), _short(data))]
    state = status.get("state")
    rows.append((t("scores.report.state", lang), t("state." + state, lang) if state else "-"))
    step, total = max(status.get("step") or 0, last_step), status.get("total_steps")
    rows.append((t("scores.report.steps", lang), f"{step or 0}" + (f" / {total}" if total else "")))
    final = status.get("final_loss")
    if final is None and train_losses:  # a live or stopped run: its last logged loss
        final = train_losses[-1]
    rows.append((t("scores.report.final_loss", lang), _fmt(final)))
    return rows


# ---- drawing ---------------------------------------------------------------------------------

def _plot(ax, steps, values, label, color, lang) -> int:
    """Finite points as a line (with markers when few); NaN/inf as red crosses on the top edge.
    Returns how many points were drawn."""
    finite = [(s, v) for s, v in zip(steps, values) if math.isfinite(v)]
    bad = [s for s, v in zip(steps, values) if not math.isfinite(v)]
    if finite:
        marker = "o" if len(finite) <= 40 else None
        ax.plot([s for s, _ in finite], [v for _, v in finite], color=color, marker=marker, markersize=3,
                linewidth=1.4, label=label)
    if bad:
        ax.plot(bad, [1.0] * len(bad), linestyle="none", marker="x", color="#d62728", markersize=7,
                clip_on=False, transform=ax.get_xaxis_transform(),
                label=t("scores.report.nonfinite", lang, series=label, count=len(bad)))
    return len(finite) + len(bad)


def _panel(ax, title: str, ylabel: str, lines: list[tuple], lang: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_label(PANEL)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(t("scores.report.step", lang))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    drawn = sum(_plot(ax, steps, values, label, color, lang) for steps, values, label, color in lines)
    if not drawn:
        ax.text(0.5, 0.5, t("scores.report.no_data", lang), ha="center", va="center", color="#777777",
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    elif len(lines) > 1 or any(not all(map(math.isfinite, values)) for _, values, _, _ in lines):
        ax.legend(fontsize=8)


def _table(ax, rows, header, col_widths=None, title=None) -> None:
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11, loc="left")
    table = ax.table(cellText=rows, colLabels=header, loc="upper left", cellLoc="left", colLoc="left",
                     colWidths=col_widths)
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.35)
    for (row, _), cell in table.get_celld().items():
        cell.set_edgecolor("#cccccc")
        if row == 0 and header:
            cell.set_facecolor("#eeeeee")


def build_figure(run, lang: str | None = None):
    """The report as a matplotlib Figure (call inside `_rc_lock` + rc_context to pick fonts)."""
    from matplotlib.figure import Figure

    lang = language(lang)
    events = run.read_metrics()
    train = series(events, "loss")
    evals = series(events, "eval_loss")
    rates = series(events, "learning_rate")
    scores = latest_scores(run)
    last_step = int(max(train[0] + evals[0], default=0))

    fig = Figure(figsize=(11.7, 13), layout="constrained")
    fig.suptitle(t("scores.report.title", lang, run=run.id), fontsize=14)
    grid = fig.add_gridspec(3, 2, height_ratios=[1, 1, 0.9])
    train_label, eval_label = t("scores.report.train", lang), t("scores.report.eval", lang)
    loss = t("scores.report.loss", lang)
    _panel(fig.add_subplot(grid[0, 0]), t("scores.report.train_loss", lang), loss,
           [(*train, train_label, "#1f77b4")], lang)
    _panel(fig.add_subplot(grid[0, 1]), t("scores.report.eval_loss", lang), loss,
           [(*evals, eval_label, "#ff7f0e")], lang)
    _panel(fig.add_subplot(grid[1, 0]), t("scores.report.learning_rate", lang),
           t("scores.report.learning_rate", lang), [(*rates, t("scores.report.learning_rate", lang), "#2ca02c")],
           lang)
    _panel(fig.add_subplot(grid[1, 1]), t("scores.report.both_losses", lang), loss,
           [(*train, train_label, "#1f77b4"), (*evals, eval_label, "#ff7f0e")], lang)

    _table(fig.add_subplot(grid[2, 0]), [list(r) for r in settings_rows(run, lang, train[1], last_step)], None,
           col_widths=[0.3, 0.7], title=t("scores.report.settings", lang))
    ax = fig.add_subplot(grid[2, 1])
    if scores is None:
        ax.axis("off")
        ax.set_title(t("scores.report.before_after_plain", lang), fontsize=11, loc="left")
        ax.text(0, 0.9, t("scores.report.not_evaluated", lang), va="top", wrap=True, color="#555555",
                transform=ax.transAxes)
    else:
        data = _short(scores.get("data_label") or scores.get("data") or "-", 40)
        rows = score_rows(scores, lang) or [["-", "n/a", "n/a", "n/a"]]
        header = [t(code, lang) for code in ("scores.report.metric", "scores.report.base",
                                              "scores.report.tuned", "scores.report.change")]
        _table(ax, rows, header, col_widths=[0.24, 0.19, 0.19, 0.34],
               title=t("scores.report.before_after", lang, data=data))
    return fig


def training_report(run, out_path, lang: str | None = None) -> Path:
    """Write the report to `out_path` (.png or .pdf); returns the path written."""
    import warnings

    import matplotlib

    out = Path(out_path)
    if out.suffix.lower() not in SUFFIXES:
        raise UserError("scores.report_suffix", name=out.name)
    lang = language(lang)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    with _rc_lock, matplotlib.rc_context({"font.family": _fonts(lang), "axes.unicode_minus": False,
                                          "pdf.fonttype": 42}), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Glyph missing" when no CJK font is installed
        fig = build_figure(run, lang)
        try:
            fig.savefig(tmp, dpi=110, format=out.suffix.lower()[1:])
            tmp.replace(out)  # readers (a download link) never get a half-written file
        finally:
            tmp.unlink(missing_ok=True)
    return out
