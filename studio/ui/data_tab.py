"""Data tab: load a dataset, see how it reads and how the model sees it, check, fix, split, save.

Six sections, top to bottom: Load (bundled demos, uploads, library datasets, Hub ids with config
and split) · Format (what was detected and why, how it will be trained, a column per role) ·
Preview (a paged table; one example as the model sees it, trained tokens set apart from masked
ones) · Quality report (findings, token-length histogram, languages) · Clean, split, augment (one
recipe, run by studio.prepare) · Save to the library and use it in the Train tab.

One state dict per browser tab ("loaded", "page", "example", "report", "prepared", "saved",
"notes") lives in a `DataSession` (studio/ui/data_session.py). Every handler is a step: it
computes a new state from a snapshot, commits it onto the session as it is now (so a slow step
cannot undo what the user did meanwhile), and redraws only its sections with `view()`; a language
switch redraws the same state in the other language. A problem is one sentence in
`notes[section]`, shown under that section until the user acts there again. The
computing lives in studio/ui/data_prepare.py and the data backends; user text reaches the page
as text (escaped Markdown, Dataframes with datatype="str", HighlightedText).
"""

from __future__ import annotations

import dataclasses

import gradio as gr
import pandas as pd

from studio.errors import UserError, explain
from studio.i18n import Msg, render, t
from studio.ui import data_prepare as dp
from studio.ui.data_session import DataSession
from studio.ui.texts import Texts

# (option value, its words in the table) for the radios and checkboxes
CLEAN_DEDUPE = {"exact": "dataui.clean.dedupe.exact", "near": "dataui.clean.dedupe.near",
                "off": "dataui.clean.dedupe.off"}
CLEAN_CONFLICTS = {"keep_first": "dataui.clean.conflicts.keep_first", "drop_all": "dataui.clean.conflicts.drop_all",
                   "off": "dataui.clean.conflicts.off"}
AUGMENT_METHODS = {"synonym": "dataui.augment.method.synonym", "insert": "dataui.augment.method.insert",
                   "swap": "dataui.augment.method.swap", "delete": "dataui.augment.method.delete",
                   "reorder": "dataui.augment.method.reorder", "substitute": "dataui.augment.method.substitute"}
AUGMENT_PARTS = {"prompt": "dataui.augment.part.prompt", "answer": "dataui.augment.part.answer",
                 "all": "dataui.augment.part.all"}
UPLOAD_TYPES = [".json", ".jsonl", ".csv", ".tsv", ".parquet", ".txt"]


def _choices(options: dict):
    return lambda lang: [(t(code, lang), value) for value, code in options.items()]


def new_state() -> dict:
    return {"loaded": None, "page": 0, "example": 1, "report": None, "prepared": None, "saved": "",
            "notes": {}}


def _note(state: dict, section: str, lang) -> str:
    note = state["notes"].get(section)
    return f"⚠ {dp.esc(render(note, lang))}" if note else ""


def _fail(state: dict, section: str, exc: BaseException) -> dict:
    return {**state, "notes": {**state["notes"], section: explain(exc).to_dict()}}


def _ok(state: dict, section: str, **changes) -> dict:
    notes = {k: v for k, v in state["notes"].items() if k != section}
    return {**state, **changes, "notes": notes}


def build(ctx, train_fields: dict, texts: Texts, lang, tabs: gr.Tabs):
    texts.add(gr.Markdown, value="dataui.intro", elem_classes="tab-intro")
    state = gr.State(DataSession(new_state()))
    model_box, max_len_box = train_fields["model.path"], train_fields["train.max_length"]

    # 1 · Load
    texts.add(gr.Markdown, value="dataui.section.load", elem_classes="data-section")
    with gr.Row(equal_height=False):
        choice = texts.add(gr.Dropdown, choices=dp.source_choices(ctx), value="demo-en", label="dataui.source",
                           info="dataui.source_help", allow_custom_value=True, scale=3, elem_id="data-choice")
        upload = texts.add(gr.File, label="dataui.upload", file_types=UPLOAD_TYPES, scale=2,
                           elem_id="data-upload", height=120)
    with gr.Row(equal_height=True):
        hub_config = texts.add(gr.Textbox, label="dataui.hub_config", max_lines=1, elem_id="data-hub-config")
        hub_split = texts.add(gr.Textbox, label="dataui.hub_split", max_lines=1, elem_id="data-hub-split")
        load_btn = texts.add(gr.Button, value="dataui.load", variant="primary", elem_id="data-load", scale=0,
                             min_width=120)
    summary = gr.Markdown(elem_id="data-summary", elem_classes="data-note")

    # 2 · Format
    texts.add(gr.Markdown, value="dataui.section.format", elem_classes="data-section")
    detection = gr.Markdown(elem_id="data-format", elem_classes="data-note")
    with gr.Row(equal_height=False):
        fmt_box = texts.add(gr.Dropdown, label="dataui.format.override", info="dataui.format.override_help",
                            choices=["auto", *_formats()], value="auto", elem_id="data-format-choice",
                            min_width=160)
        roles = [gr.Dropdown(visible=False, allow_custom_value=False, elem_id=f"data-role-{i}", min_width=140)
                 for i in range(dp.MAX_ROLES)]
    with gr.Row(equal_height=True):
        system = texts.add(gr.Textbox, label="dataui.format.system", max_lines=2, scale=4, elem_id="data-system")
        apply_btn = texts.add(gr.Button, value="dataui.format.apply", elem_id="data-apply", scale=0, min_width=120)
    texts.add(gr.Markdown, value="dataui.format.mapping_help", elem_classes="field-note")

    # 3 · Preview
    texts.add(gr.Markdown, value="dataui.section.preview", elem_classes="data-section")
    table = texts.add(gr.Dataframe, label="dataui.preview.table", interactive=False, wrap=True, max_height=420,
                      elem_id="data-table", datatype="str")
    with gr.Row(equal_height=True):
        prev_btn = texts.add(gr.Button, value="dataui.preview.prev", size="sm", elem_id="data-prev", scale=0,
                             min_width=130)
        page_label = gr.Markdown(elem_id="data-page", elem_classes="data-page")
        next_btn = texts.add(gr.Button, value="dataui.preview.next", size="sm", elem_id="data-next", scale=0,
                             min_width=130)
    with gr.Row(equal_height=False):
        example_n = texts.add(gr.Number, label="dataui.example.number", value=1, precision=0, minimum=1,
                              elem_id="data-example-n", scale=0, min_width=160)
        with gr.Column(scale=5):
            example = texts.add(gr.HighlightedText, label="dataui.example.label", color_map=dp.color_map(),
                                show_legend=True, show_inline_category=False, combine_adjacent=False,
                                elem_id="data-example")
            texts.register(example, color_map=dp.color_map)
            example_note = gr.Markdown(elem_id="data-example-note", elem_classes="data-note")

    # 4 · Quality report
    texts.add(gr.Markdown, value="dataui.section.quality", elem_classes="data-section")
    with gr.Row(equal_height=False):
        quality_md = gr.Markdown(elem_id="data-quality", elem_classes="data-note")
        quality_btn = texts.add(gr.Button, value="dataui.quality.run", elem_id="data-quality-run", scale=0,
                                min_width=150)
    with gr.Row(equal_height=False):
        findings = texts.add(gr.Dataframe, value=dp.findings_frame(None, "en"), label="dataui.quality.findings",
                             interactive=False,
                             column_widths=["62%", "10%", "28%"], wrap=True,
                             datatype="str", elem_id="data-findings", scale=3)
        histogram = gr.BarPlot(None, x="tokens", y="rows", color="fit", color_map=dp.histogram_colors(),
                               label=t("dataui.quality.histogram"), x_title=t("dataui.quality.tokens"),
                               y_title=t("dataui.quality.rows"),
                               color_title=" ", height=340, elem_id="data-histogram", scale=2,
                               x_label_angle=-45)
        texts.register(histogram, label="dataui.quality.histogram", x_title="dataui.quality.tokens",
                       y_title="dataui.quality.rows", color_map=dp.histogram_colors)

    # 5 · Clean, split, augment
    texts.add(gr.Markdown, value="dataui.section.prepare", elem_classes="data-section")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=280):
            texts.add(gr.Markdown, value="dataui.clean.title", elem_classes="data-subsection")
            trim = texts.add(gr.Checkbox, label="dataui.clean.trim", value=True, elem_id="data-clean-trim")
            drop_empty = texts.add(gr.Checkbox, label="dataui.clean.drop_empty", value=True,
                                   elem_id="data-clean-empty")
            dedupe = texts.add(gr.Radio, label="dataui.clean.dedupe", choices=_choices(CLEAN_DEDUPE), value="exact",
                               elem_id="data-clean-dedupe")
            threshold = texts.add(gr.Slider, label="dataui.clean.threshold", minimum=0.5, maximum=1.0, step=0.05,
                                  value=0.8, elem_id="data-clean-threshold")
            conflicts = texts.add(gr.Radio, label="dataui.clean.conflicts", choices=_choices(CLEAN_CONFLICTS),
                                  value="keep_first", elem_id="data-clean-conflicts")
            with gr.Row():
                min_tokens = texts.add(gr.Textbox, label="dataui.clean.min_tokens", value="0", max_lines=1,
                                       elem_id="data-clean-min")
                max_tokens = texts.add(gr.Textbox, label="dataui.clean.max_tokens", value="0", max_lines=1,
                                       elem_id="data-clean-max")
            placeholders = texts.add(gr.Textbox, label="dataui.clean.placeholders", lines=2,
                                     placeholder="dataui.clean.placeholders_placeholder",
                                     elem_id="data-clean-placeholders")
        with gr.Column(min_width=240):
            texts.add(gr.Markdown, value="dataui.split.title", elem_classes="data-subsection")
            train_share = texts.add(gr.Textbox, label="dataui.split.train", value="0.7", max_lines=1,
                                    elem_id="data-split-train")
            val_share = texts.add(gr.Textbox, label="dataui.split.val", value="0.2", max_lines=1,
                                  elem_id="data-split-val")
            test_share = texts.add(gr.Textbox, label="dataui.split.test", value="0.1", max_lines=1,
                                   elem_id="data-split-test")
            split_seed = texts.add(gr.Textbox, label="dataui.split.seed", value="42", max_lines=1,
                                   elem_id="data-split-seed")
            stratify = texts.add(gr.Dropdown, label="dataui.split.stratify", choices=[("–", "")], value="",
                                 elem_id="data-split-stratify")
        with gr.Column(min_width=280):
            texts.add(gr.Markdown, value="dataui.augment.title", elem_classes="data-subsection")
            methods = texts.add(gr.CheckboxGroup, label="dataui.augment.methods", choices=_choices(AUGMENT_METHODS),
                                value=[], elem_id="data-augment-methods")
            multiplier = texts.add(gr.Slider, label="dataui.augment.multiplier", minimum=0, maximum=5, step=0.5,
                                   value=1.0, elem_id="data-augment-multiplier")
            aug_seed = texts.add(gr.Textbox, label="dataui.augment.seed", value="42", max_lines=1,
                                 elem_id="data-augment-seed")
            part = texts.add(gr.Radio, label="dataui.augment.part", choices=_choices(AUGMENT_PARTS), value="prompt",
                             elem_id="data-augment-part")
            substitutions = texts.add(gr.Textbox, label="dataui.augment.substitutions", lines=3,
                                      placeholder="dataui.augment.substitutions_placeholder",
                                      elem_id="data-augment-subs")
    prepare_btn = texts.add(gr.Button, value="dataui.prepare.run", variant="primary", elem_id="data-prepare")
    prepare_md = gr.Markdown(elem_id="data-prepare-status", elem_classes="data-note")
    with gr.Column():
        steps = texts.add(gr.Dataframe, value=dp.steps_frame(None, "en"), label="dataui.prepare.steps",
                          interactive=False,
                          column_widths=["12%", "8%", "8%", "72%"], wrap=True,
                          datatype="str", elem_id="data-steps", max_height=360)
        side = texts.add(gr.Dataframe, value=dp.side_by_side(None, "en"), label="dataui.prepare.augmented",
                         interactive=False,
                         column_widths=["42%", "42%", "16%"], wrap=True,
                         datatype="str", elem_id="data-augmented", max_height=360)

    # 6 · Save
    texts.add(gr.Markdown, value="dataui.section.save", elem_classes="data-section")
    with gr.Row(equal_height=True):
        save_name = texts.add(gr.Textbox, label="dataui.save.name", max_lines=1, elem_id="data-save-name", scale=3)
        save_btn = texts.add(gr.Button, value="dataui.save.run", variant="primary", elem_id="data-save", scale=1)
        use_btn = texts.add(gr.Button, value="dataui.save.use", elem_id="data-use", scale=1)
    save_md = gr.Markdown(elem_id="data-save-status", elem_classes="data-note")

    # --- drawing the state ---------------------------------------------------------------------
    # Each section of the tab is drawn by its own part, so a step redraws only what it changed:
    # the quality report arriving after a load leaves alone the columns the user is picking.
    parts = {"load": [choice, summary], "format": [detection, fmt_box, *roles, stratify],
             "preview": [table, page_label], "example": [example_n, example, example_note],
             "quality": [quality_md, findings, histogram], "prepare": [prepare_md, steps, side],
             "save": [save_md]}
    outputs = [c for part in parts.values() for c in part]
    everything = tuple(parts)

    def view(session, s: dict, model: str, max_length, lang_code: str, drawn=everything) -> dict:
        """The parts `drawn` of the tab, for state `s`, as {component: value}."""
        loaded: dp.Loaded | None = s["loaded"]
        out = {}
        if "load" in drawn:
            source = {"value": loaded.source} if loaded is not None else {}
            out[choice] = gr.update(choices=dp.source_choices(ctx, lang_code), **source)
            out[summary] = (_note(s, "load", lang_code) or
                            (dp.summary_text(loaded, lang_code) if loaded else t("dataui.pick", lang_code)))
        if "format" in drawn:
            out.update(format_view(s, lang_code))
        if "preview" in drawn:
            if loaded is None:
                out.update({table: pd.DataFrame(), page_label: ""})
            else:
                frame, page, pages = dp.page_frame(loaded, s["page"])
                out.update({table: frame, page_label: t("dataui.preview.page", lang_code, page=page + 1,
                                                        pages=pages)})
        if "example" in drawn:
            segments, note = example_outputs(s, model, max_length, lang_code)
            out.update({example_n: s["example"] if loaded else 1, example: segments, example_note: note})
        if "quality" in drawn:
            out.update(quality_view(session, s, model, max_length, lang_code))
        if "prepare" in drawn:
            prepared = s["prepared"]
            out.update({prepare_md: _note(s, "prepare", lang_code) or (
                dp.prepared_text(prepared, lang_code) if prepared is not None else ""),
                steps: dp.steps_frame(prepared, lang_code), side: dp.side_by_side(prepared, lang_code)})
        if "save" in drawn:
            out[save_md] = save_text(s, lang_code)
        return out

    def format_view(s: dict, lang_code: str) -> dict:
        loaded = s["loaded"]
        if loaded is None:
            return {detection: _note(s, "format", lang_code), fmt_box: gr.update(value="auto"),
                    **{box: gr.update(visible=False) for box in roles},
                    stratify: gr.update(choices=[("–", "")], value="")}
        out = {detection: "\n\n".join(x for x in (dp.detection_text(loaded, lang_code), _note(s, "format", lang_code))
                                      if x),
               fmt_box: gr.update(value=loaded.format)}
        none = t("dataui.format.none", lang_code)
        names = dp.roles_of(loaded)
        col_choices = [(none, "")] + [(c, c) for c in loaded.columns]
        for i, box in enumerate(roles):
            if i < len(names):
                role = names[i]
                out[box] = gr.update(visible=True, label=t("dataui.format.role", lang_code, role=role),
                                     choices=col_choices,
                                     value=loaded.mapping.get(role) or loaded.user_mapping.get(role, ""))
            else:
                out[box] = gr.update(visible=False)
        out[stratify] = gr.update(choices=[("–", "")] + [(c, c) for c in loaded.columns
                                                         if not c.startswith("_") or c == "_group"])
        return out

    def quality_view(session, s: dict, model: str, max_length, lang_code: str) -> dict:
        report = s["report"] if s["loaded"] is not None else None
        if not report:
            session.plot_key = None
            return {quality_md: _note(s, "quality", lang_code), findings: dp.findings_frame(None, lang_code),
                    histogram: None}
        # The plot is sent only when its numbers changed: Gradio draws a plot asynchronously and
        # throws (offsetWidth of null) when its tab was left meanwhile (e.g. Save, then "Use in
        # training"), so redraws of an unchanged histogram are skipped. Its axis titles keep the
        # language they were drawn in until the next check.
        key = repr(report.get("histogram"))
        plot = gr.skip() if session.plot_key == key else histogram_update(report, lang_code)
        session.plot_key = key
        return {quality_md: _note(s, "quality", lang_code) or dp.quality_text(report, model, _int(max_length),
                                                                              lang_code),
                findings: dp.findings_frame(report, lang_code), histogram: plot}

    def save_text(s: dict, lang_code: str) -> str:
        """The line under Save: the problem, else what was saved or is being used."""
        note = _note(s, "save", lang_code)
        if not note and s["saved"]:
            note = dp.esc(render(Msg.from_dict(s["saved"]["message"]), lang_code))
        return note

    def example_outputs(s: dict, model: str, max_length, lang_code: str) -> list:
        if s["loaded"] is None or s["loaded"].detection is None:
            return [[], ""]
        try:
            tok = dp.tokenizer_for(ctx, model)
            segments, note = dp.example_view(s["loaded"], s["example"], tok, _int(max_length), model, lang_code)
        except Exception as exc:  # the model field may name something that is not there (yet)
            return [[], f"⚠ {dp.esc(render(explain(exc), lang_code))}"]
        return [segments, note]

    def histogram_update(report: dict, lang_code: str):
        frame = dp.histogram_frame(report, lang_code)
        if frame is None:
            return None
        return gr.update(value=frame, sort=list(frame["tokens"]))

    # --- steps: each computes a new state from a snapshot; `step` commits and draws it ------------
    common = [model_box, max_len_box, lang]

    def run_step(compute, session, values, drawn):
        """compute(state, *widgets, model, max_length) -> new state, committed onto the session;
        returns the state now and the drawn parts, or (None, skip) for a result that came too late
        (the dataset was replaced meanwhile): then nothing on the page changes."""
        *widgets, model, max_length, lang_code = values
        snap = session.begin()
        s = session.commit(snap, compute(snap.state, *widgets, model, max_length))
        return s, (gr.skip() if s is None else view(session, s, model, max_length, lang_code, drawn))

    def step(compute, drawn=everything):
        """A handler of (session, *widgets, model, max_length, lang) for `compute`."""
        return lambda session, *values: run_step(compute, session, values, drawn)[1]

    def load(s, source, config, split, model=None, max_length=None):
        """Read and detect a source (the quality report follows in its own step)."""
        try:
            loaded = dp.load_source(ctx, source, config, split)
        except Exception as exc:
            return _fail(new_state(), "load", exc)
        return detected({**new_state(), "loaded": loaded}, "auto", {})

    def detected(s, fmt, mapping, system_text=None) -> dict:
        """The state with the dataset read as `fmt` with `mapping`; a misfit keeps the rows on
        screen with the sentence under Format, where the columns can be picked."""
        loaded = s["loaded"]
        if system_text is not None:
            loaded = dataclasses.replace(loaded, system=system_text)
        try:
            loaded = dp.redetect(loaded, fmt, mapping)
        except UserError as exc:
            return _fail({**s, "loaded": getattr(exc, "loaded", loaded), "report": None, "prepared": None},
                         "format", exc)
        return _ok({**s, "loaded": loaded, "prepared": None}, "format")

    def quality(s, model, max_length) -> dict:
        from studio.quality import quality_report

        if s["loaded"] is None or s["loaded"].detection is None:
            return s
        try:
            tok = dp.tokenizer_for(ctx, model)
            report = quality_report(dp.all_records(s["loaded"]), tokenizer=tok, max_length=_int(max_length) or 256)
        except Exception as exc:
            return _fail({**s, "report": None}, "quality", exc)
        return _ok(s, "quality", report=report)

    def read_upload(s, file, model, max_length):
        try:
            path = ctx.save_upload(file)
        except Exception as exc:
            return _fail(new_state(), "load", exc)
        return load(s, path, "", "")

    def on_upload(session, file, *common_values):
        return run_step(read_upload, session, (file, *common_values), everything)[1] if file else gr.skip()

    def redetect(s, fmt, mapping, model, max_length, system_text=None):
        if s["loaded"] is None:
            return s
        return quality(detected(s, fmt, mapping, system_text), model, max_length)

    def apply_mapping(s, fmt, system_text, *rest):
        role_values, (model, max_length) = rest[:dp.MAX_ROLES], rest[dp.MAX_ROLES:]
        if s["loaded"] is None:
            return s
        loaded = s["loaded"]
        names = dp.roles_of(loaded)
        # Only the columns the user changed count as their mapping; the rest stays detected.
        mapping = {role: value for role, value in zip(names, role_values)
                   if value and (loaded.detection is None or value != loaded.mapping.get(role))}
        mapping.update({role: col for role, col in loaded.user_mapping.items()
                        if role in names and role_values[names.index(role)] == col})
        return redetect(s, fmt, mapping, model, max_length, system_text)

    def turn_page(by):
        def turn(s, model, max_length):
            if s["loaded"] is None:
                return s
            pages = max(1, -(-s["loaded"].rows // dp.PAGE_SIZE))
            return {**s, "page": min(max(0, s["page"] + by), pages - 1)}
        return turn

    def prepare(s, *values):
        (trim_v, empty_v, dedupe_v, thr_v, conf_v, min_v, max_v, ph_v, tr_v, va_v, te_v, seed_v, strat_v,
         meth_v, mult_v, aseed_v, part_v, subs_v, model, max_length) = values
        if s["loaded"] is None:
            return _fail(s, "prepare", UserError("dataui.prepare.first"))
        try:
            recipe = dp.make_recipe(
                s["loaded"], dp.clean_options(trim_v, empty_v, dedupe_v, thr_v, conf_v, min_v, max_v, ph_v),
                dp.split_options(tr_v, va_v, te_v, seed_v, strat_v),
                dp.augment_options(meth_v, mult_v, aseed_v, part_v, subs_v))
            prepared = dp.run_prepare(ctx, recipe, dp.tokenizer_for(ctx, model), _int(max_length))
        except Exception as exc:
            return _fail({**s, "prepared": None}, "prepare", exc)
        return _ok({**s, "prepared": prepared, "saved": ""}, "prepare")

    def save(s, name, model, max_length):
        from studio.library import Library

        try:
            if s["prepared"] is None:
                raise UserError("dataui.save.first")
            if not (name or "").strip():
                raise UserError("dataui.save.no_name")
            entry = Library(ctx.home).save(s["prepared"], name)
        except Exception as exc:
            return _fail(s, "save", exc)
        rows = sum(entry["rows"].values())
        saved = {"ref": entry["ref"], "message": Msg("dataui.save.saved", id=entry["ref"], rows=rows).to_dict()}
        return _ok({**s, "saved": saved}, "save")

    def on_save(session, *values):
        s, out = run_step(save, session, values, ("save",))
        if s is not None and "save" not in s["notes"]:  # saved: the Train tab's list gains it
            out[train_fields["data.path"]] = gr.update(choices=_train_choices())
        return out

    def use(s, model, max_length):
        loaded = s["loaded"]
        ref = (s["saved"] or {}).get("ref") or (loaded.source if loaded is not None else "")
        if not ref:
            return _fail(s, "save", UserError("dataui.save.nothing"))
        saved = {"ref": (s["saved"] or {}).get("ref", ""), "using": ref,
                 "message": Msg("dataui.save.using", id=ref).to_dict()}
        return _ok({**s, "saved": saved}, "save")

    def on_use(session, *values):
        # Only the save note is redrawn: redrawing the whole tab (its plot) while the page
        # switches to the Train tab makes Gradio measure a component that is gone (a JS error).
        s, out = run_step(use, session, values, ("save",))
        if s is not None and "save" not in s["notes"]:
            out[train_fields["data.path"]] = gr.update(choices=_train_choices(), value=s["saved"]["using"])
            out[tabs] = gr.Tabs(selected="train")
        return out

    def _train_choices():
        from studio.ui.train_tab import dataset_choices

        return dataset_choices(ctx)

    private = {"api_visibility": "private"}
    source_inputs = [state, choice, hub_config, hub_split] + common
    on_load_source, on_quality = step(load), step(quality, ("quality",))
    # The rows and the example show first; the quality report (the whole file) follows.
    for event, fn, inputs in ((choice.input, on_load_source, source_inputs),
                              (load_btn.click, on_load_source, source_inputs),
                              (upload.upload, on_upload, [state, upload] + common)):
        event(fn, inputs, outputs, show_progress_on=[summary], **private).then(
            on_quality, [state] + common, outputs, show_progress_on=[findings], **private)
    fmt_box.input(step(lambda s, fmt, model, max_length: redetect(s, fmt, {}, model, max_length)),
                  [state, fmt_box] + common, outputs, show_progress_on=[detection], **private)
    apply_btn.click(step(apply_mapping), [state, fmt_box, system, *roles] + common, outputs,
                    show_progress_on=[detection], **private)
    prev_btn.click(step(turn_page(-1), ("preview",)), [state] + common, outputs, show_progress="hidden", **private)
    next_btn.click(step(turn_page(1), ("preview",)), [state] + common, outputs, show_progress="hidden", **private)
    gr.on([example_n.input, example_n.submit],
          step(lambda s, index, model, max_length: _ok({**s, "example": _int(index, 1)}, "example"), ("example",)),
          [state, example_n] + common, outputs, show_progress_on=[example], trigger_mode="always_last", **private)
    quality_btn.click(on_quality, [state] + common, outputs, show_progress_on=[findings], **private)
    prepare_inputs = [trim, drop_empty, dedupe, threshold, conflicts, min_tokens, max_tokens, placeholders,
                      train_share, val_share, test_share, split_seed, stratify, methods, multiplier, aug_seed, part,
                      substitutions]
    prepare_btn.click(step(prepare, ("prepare", "save")), [state] + prepare_inputs + common, outputs,
                      show_progress_on=[prepare_md], **private)
    save_btn.click(on_save, [state, save_name] + common, outputs + [train_fields["data.path"]],
                   show_progress_on=[save_md], **private)
    use_btn.click(on_use, [state] + common, [save_md, train_fields["data.path"], tabs],
                  show_progress="hidden", **private)

    # The example follows the Train tab's model and max length; every drawn sentence the language.
    def redraw(session, model, max_length, lang_code):
        return view(session, session.state, model, max_length, lang_code)

    def redraw_for_model(session, model, max_length, lang_code):
        return view(session, session.state, model, max_length, lang_code, ("example", "quality"))

    gr.on([model_box.change, max_len_box.blur, max_len_box.submit], redraw_for_model, [state] + common, outputs,
          show_progress="hidden", trigger_mode="always_last", **private)
    texts.on_language(redraw, [state] + common, outputs, slow=True)

    def on_load(session, source, model, max_length, lang_code):
        return run_step(load, session, (source, "", "", model, max_length, lang_code), everything)[1]

    return {"load": (on_load, [state, choice] + common, outputs)}


def _formats() -> tuple[str, ...]:
    from studio.formats import FORMATS

    return FORMATS


def _int(value, default: int = 0) -> int:
    return dp._int(value, default)
