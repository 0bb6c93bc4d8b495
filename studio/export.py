"""Export what a run produced: a merged model, the adapter alone, an archive, the Hub, snippets.

    folder = merge_and_save(run, "out/merged", shard_size="2GB")   # LoRA merged into its base
    folder = save_adapter(run, "out/adapter")                      # the adapter's files only
    zip_path = archive(folder)                                     # out/merged.zip, for a download
    url = push_to_hub(folder, "me/my-model", token)                # fails fast when offline
    print(python_snippet(run)); print(chat_command(run, home))     # the chat outside the studio

`run` is a `Run` or a folder (an adapter folder, or a saved full model). Every export writes
safetensors only (a training run's pickled `training_args.bin` is never copied) and is written to
a temporary sibling folder first, so a failed export never leaves a half-written OUT behind.
The merged model reloads with plain `transformers.AutoModelForCausalLM.from_pretrained(OUT)`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import zipfile
from pathlib import Path

from studio.errors import UserError
from studio.paths import expand_user, resolve_model_path
from studio.runs import Run

# What an adapter export carries: its config and weights, the tokenizer, the chat template.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json",
                 "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                 "chat_template.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
                 "generation_config.json")
HUB_REPO = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")


def output_of(source: Run | str | Path) -> tuple[Path, str]:
    """(adapter or model folder, base model) of a run or a folder; UserError when there is none."""
    if isinstance(source, Run):
        state = source.status().get("state", "unknown")
        output = source.output_dir()
        if state not in ("completed", "stopped") or output is None:
            raise UserError("arena.run_not_ready", run=source.id, state=state)
        try:
            base = source.config().model.path
        except Exception:
            base = ""
        return output, base or _recorded_base(output)
    folder = expand_user(source)
    if not folder.is_dir():
        raise UserError("export.not_found", path=str(source))
    return folder.resolve(), _recorded_base(folder)


def _recorded_base(folder: Path) -> str:
    from studio.arena import adapter_base

    return adapter_base(folder) if (folder / "adapter_config.json").exists() else ""


def is_adapter(folder: Path) -> bool:
    return (Path(folder) / "adapter_config.json").is_file()


# PEFT types that add virtual tokens (prefix/prompt tuning): they cannot be merged into weights.
PROMPT_LEARNING_KINDS = ("PREFIX_TUNING", "PROMPT_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING")


def adapter_kind(folder: Path) -> str:
    """The adapter's PEFT type from adapter_config.json ("LORA", "IA3", "PREFIX_TUNING", …)."""
    import json

    try:
        config = json.loads((Path(folder) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(config.get("peft_type", "") if isinstance(config, dict) else "").upper()


def _fresh_target(out_dir: str | Path) -> Path:
    out = expand_user(out_dir, strict=True).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError("export.out_not_empty", path=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _publish(tmp: Path, out: Path) -> Path:
    if out.exists():
        out.rmdir()  # empty (checked before): replaced by the finished export
    os.replace(tmp, out)
    return out


def _tmp_beside(out: Path) -> Path:
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def merge_and_save(source: Run | str | Path, out_dir: str | Path, shard_size: str | int = "2GB",
                   base: str | None = None) -> Path:
    """Merge a LoRA (or IA3) adapter into its base and save the result (safetensors in shards of at
    most `shard_size`, the tokenizer beside it) to `out_dir`; a full fine-tune is re-saved the same
    way. Saved in the base's own precision (bf16/fp16 bases stay so). Prefix/prompt-tuning adapters
    have nothing to merge: UserError (export the adapter alone)."""
    import torch

    from studio.arena import AdapterPool
    from studio.infer import load_base_model, require_safetensors
    from studio.security import parse_size

    shard_bytes = parse_size(shard_size)
    folder, recorded = output_of(source)
    out = _fresh_target(out_dir)
    kind = adapter_kind(folder) if is_adapter(folder) else ""
    if kind in PROMPT_LEARNING_KINDS:  # virtual tokens, not weight changes: nothing to merge
        raise UserError("peftm.cannot_merge", path=str(folder), kind=kind)
    if kind not in ("", "LORA"):  # IA3: PEFT merges it, but the LoRA-only pool cannot hold it
        from peft import PeftModel

        model, tokenizer = load_base_model(base or recorded)
        config_dtype = model.config.to_dict().get("dtype")
        require_safetensors(folder, "adapter")
        model = PeftModel.from_pretrained(model, str(folder), use_safetensors=True).merge_and_unload()
    elif is_adapter(folder):
        pool = AdapterPool(base or recorded)  # checks the adapter fits this base, safetensors only
        pool.add(folder)
        model, tokenizer = pool.peft.merge_and_unload(), pool.tokenizer
        config_dtype = pool.base_config.get("dtype") or pool.base_config.get("torch_dtype")
    else:
        model, tokenizer = load_base_model(folder)
        config_dtype = model.config.to_dict().get("dtype")
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(str(config_dtype))
    if dtype is not None:
        model = model.to(dtype)
    tmp = _tmp_beside(out)
    try:
        model.save_pretrained(str(tmp), max_shard_size=shard_bytes, safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        return _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_adapter(source: Run | str | Path, out_dir: str | Path) -> Path:
    """Copy the adapter's own files (config, safetensors weights, tokenizer) to `out_dir`."""
    from studio.infer import require_safetensors

    folder, _ = output_of(source)
    if not is_adapter(folder):
        raise UserError("export.no_adapter", path=str(folder))
    require_safetensors(folder, "adapter")  # any PEFT type (LoRA, IA3, prefix, prompt): safetensors only
    if not (folder / "adapter_model.safetensors").is_file():
        raise UserError("arena.no_weights", key="adapter.path", path=str(folder))
    out = _fresh_target(out_dir)
    tmp = _tmp_beside(out)
    try:
        tmp.mkdir(parents=True)
        for name in ADAPTER_FILES:
            path = folder / name
            if path.is_file() and not path.is_symlink():
                shutil.copyfile(path, tmp / name)
        return _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def archive(folder: str | Path) -> Path:
    """`folder` as `<folder>.zip` beside it (stored, not compressed: weights barely compress),
    for a download. Regular files only: links are left out."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise UserError("export.not_found", path=str(folder))
    target = folder.with_name(folder.name + ".zip")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    zf.write(path, Path(folder.name) / path.relative_to(folder))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def push_to_hub(folder: str | Path, repo_id: str, token: str, private: bool = True) -> str:
    """Upload `folder` to the Hub model repo `repo_id` (created when missing, private by default);
    returns its URL. Fails within seconds, with a sentence, when offline or unreachable. The token
    is used for this call only: never stored, never shown."""
    from huggingface_hub import HfApi, constants

    from studio.models import hub_reachable

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError("export.not_found", path=str(folder))
    if not HUB_REPO.fullmatch(repo_id or "") or ".." in repo_id:
        raise UserError("export.bad_repo", repo=str(repo_id)[:100])
    if not (token or "").strip():
        raise UserError("export.no_token")
    if constants.is_offline_mode():
        raise UserError("export.hub_offline")
    if not hub_reachable():
        raise UserError("export.hub_unreachable")
    api = HfApi(token=token.strip())
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), ignore_patterns=["*.bin", "*.pt", "*.pkl"])
    except Exception as exc:
        detail = str(exc).replace(token.strip(), "***").splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UserError("export.push_failed", repo=repo_id, detail=detail) from None
    return str(url)


def python_snippet(source: Run | str | Path, prompt: str = "Hello!", system: str = "",
                   max_new_tokens: int = 128) -> str:
    """A standalone Python script that loads what `source` produced (base + adapter, or the saved
    model) and answers `prompt` greedily the way the studio's chat does."""
    folder, base = output_of(source)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    lines = ["import torch", "from transformers import AutoModelForCausalLM, AutoTokenizer"]
    if is_adapter(folder):
        lines += ["from peft import PeftModel", "",
                  f"base = AutoModelForCausalLM.from_pretrained({resolve_model_path(base)!r}, dtype=torch.float32,"
                  " use_safetensors=True)",
                  f"model = PeftModel.from_pretrained(base, {str(folder)!r})",
                  f"tokenizer = AutoTokenizer.from_pretrained({str(folder)!r})"]
    else:
        lines += ["",
                  f"model = AutoModelForCausalLM.from_pretrained({str(folder)!r}, dtype=torch.float32,"
                  " use_safetensors=True)",
                  f"tokenizer = AutoTokenizer.from_pretrained({str(folder)!r})"]
    lines += ["model.eval()",
              f"messages = {messages!r}",
              "text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)",
              'inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)',
              "with torch.inference_mode():",
              f"    output = model.generate(**inputs, max_new_tokens={int(max_new_tokens)}, do_sample=False,",
              "                            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)",
              'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
              ""]
    return "\n".join(lines)


def chat_command(source: Run | str | Path, home: str | Path | None = None, prompt: str = "Hello!") -> str:
    """The `studio chat` command line that asks the same model `prompt` from a terminal."""
    target = source.id if isinstance(source, Run) else str(expand_user(source).resolve())
    parts = ["studio", "chat", target, "--prompt", prompt, "--stream"]
    if home is not None and isinstance(source, Run):
        parts += ["--home", str(home)]
    return " ".join(shlex.quote(p) for p in parts)
