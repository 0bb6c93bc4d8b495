"""DPO: preference alignment with TRL's `DPOTrainer` (the `method.stage: dpo` of a run).

    trainer, recorder = build_dpo_trainer(cfg, run, stop_event, plan)   # studio.train.build_trainer calls it

The data pipeline gives TRL's conversational preference records
(`{"prompt": [messages], "chosen": [messages], "rejected": [messages]}`) from every preference
shape the Data tab detects (strings, message lists, sharegpt-preference); the data check refuses
any other layout before a run folder exists. The model loads as the method says
(`studio.train.load_for_training`). With a PEFT method (LoRA, QLoRA, DoRA, rsLoRA, …) the
reference model is the same weights with the adapter switched off, so there is no second copy in
memory; with full or freeze fine-tuning TRL loads a frozen reference copy. The trainer logs its
rewards (`rewards/chosen`, `rewards/rejected`, `rewards/margins`, `rewards/accuracies`, and the
`eval_` versions), which `RunRecorder` keeps in metrics.jsonl for the Train tab's reward plot.
"""

from __future__ import annotations

import threading

from transformers import PrinterCallback

from studio.config import StudioConfig
from studio.i18n import Msg
from studio.models import peft_config_for
from studio.recorder import RunRecorder
from studio.runs import Run


def build_dpo_config(cfg: StudioConfig, run: Run, plan: dict, n_train: int, n_eval: int):
    """TRL's DPOConfig: the shared TrainingArguments plus DPO's own settings."""
    from trl import DPOConfig

    from studio.train import training_arguments

    return DPOConfig(
        **training_arguments(cfg, run, plan, n_train, n_eval),
        beta=cfg.method.dpo_beta,
        max_length=cfg.train.max_length,  # the data check already left out pairs that do not fit
        trust_remote_code=cfg.model.trust_remote_code,  # the reference copy loads like the model
    )


def build_dpo_trainer(cfg: StudioConfig, run: Run, stop_event: threading.Event, plan: dict):
    """Load the model and the preference data for cfg; return (DPOTrainer, RunRecorder)."""
    from trl import DPOTrainer

    from studio.train import cpu_speed_ups, eval_sample, load_for_training, prepare_data, trainer_callbacks

    model, tokenizer = load_for_training(cfg, run, plan)
    run.update_status(phase="preparing data", message=Msg("train.preparing_data"))
    train_ds, eval_ds = prepare_data(cfg, run, tokenizer)
    eval_ds = eval_sample(eval_ds, cfg.train.seed)
    peft_config = peft_config_for(cfg.method)
    run.log(f"dpo: beta {cfg.method.dpo_beta}, reference = "
            + ("the base model with the adapter disabled" if peft_config is not None else "a frozen copy of the model"))
    recorder = RunRecorder(run, stop_event)
    trainer = DPOTrainer(
        model=model,
        args=build_dpo_config(cfg, run, plan, len(train_ds), len(eval_ds) if eval_ds is not None else 0),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=trainer_callbacks(cfg, recorder),
    )
    trainer.remove_callback(PrinterCallback)  # progress goes to the run folder, not stdout
    cpu_speed_ups(trainer.model, plan, run)
    return trainer, recorder
