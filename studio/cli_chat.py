"""`studio chat`, `studio export` and `studio serve`: the Chat tab's backend from a terminal.

    studio chat RUN --prompt "What is 2 plus 3?" [--stream] [--system S] [--max-new-tokens N]
    studio export RUN --merge OUT [--zip] [--shard-size 2GB]     # LoRA merged into its base
    studio export RUN --adapter OUT [--zip]                       # the adapter alone
    studio serve RUN [--port 8000] [--host 127.0.0.1] [--api-key KEY]

RUN is a run id in the home (`studio runs`), "demo" (the bundled base model), or a folder (an
adapter or a saved model). A missing run, or one that did not finish, is `error: …`, exit 2.
Registered in studio.cli.COMMAND_MODULES.
"""

from __future__ import annotations

import sys

from studio.errors import UserError
from studio.i18n import t
from studio.paths import expand_user


def add_commands(sub, add_home) -> None:
    chat = sub.add_parser("chat", help=t("chatcli.help_chat"))
    add_home(chat)
    chat.add_argument("run", metavar="RUN", help=t("chatcli.help_run"))
    chat.add_argument("--prompt", required=True, help=t("chatcli.help_prompt"))
    chat.add_argument("--stream", action="store_true", help=t("chatcli.help_stream"))
    chat.add_argument("--system", default="", help=t("chatcli.help_system"))
    chat.add_argument("--max-new-tokens", type=int, default=128, help=t("chatcli.help_max_new_tokens"))
    chat.add_argument("--temperature", type=float, default=0.0, help=t("chatcli.help_temperature"))
    chat.add_argument("--top-p", type=float, default=1.0, help=t("chatcli.help_top_p"))
    chat.add_argument("--top-k", type=int, default=0, help=t("chatcli.help_top_k"))
    chat.add_argument("--repetition-penalty", type=float, default=1.0, help=t("chatcli.help_repetition_penalty"))
    chat.add_argument("--stop", action="append", default=[], metavar="TEXT", help=t("chatcli.help_stop"))
    chat.add_argument("--seed", type=int, default=None, help=t("chatcli.help_seed"))

    export = sub.add_parser("export", help=t("chatcli.help_export"))
    add_home(export)
    export.add_argument("run", metavar="RUN", help=t("chatcli.help_run"))
    how = export.add_mutually_exclusive_group(required=True)
    how.add_argument("--merge", action="store_true", help=t("chatcli.help_merge"))
    how.add_argument("--adapter", action="store_true", help=t("chatcli.help_adapter"))
    export.add_argument("out", metavar="OUT", help=t("chatcli.help_out"))
    export.add_argument("--zip", action="store_true", help=t("chatcli.help_zip"))
    export.add_argument("--shard-size", default="2GB", help=t("chatcli.help_shard_size"))

    serve = sub.add_parser("serve", help=t("chatcli.help_serve"))
    add_home(serve)
    serve.add_argument("run", metavar="RUN", help=t("chatcli.help_run"))
    serve.add_argument("--host", default="127.0.0.1", help=t("chatcli.help_serve_host"))
    serve.add_argument("--port", type=int, default=8000, help=t("chatcli.help_serve_port"))
    serve.add_argument("--api-key", default=None, help=t("chatcli.help_api_key"))
    serve.add_argument("--allow-remote-code", action="store_true", help=t("cli.help_allow_remote_code"))


def source_of(text: str, home):
    """RUN as typed -> a Run (by id), or a folder Path, or a base model name; UserError otherwise."""
    from studio.runs import RunStore

    text = (text or "").strip()
    store = RunStore(home)
    try:
        return store.get(text)
    except KeyError:
        pass
    if (folder := expand_user(text)).is_dir():
        return folder.resolve()
    if text == "demo":
        return text
    raise UserError("arena.run_missing", run=text[:80])


def _check_finished(source) -> None:
    """A run that did not finish (failed, running, no output): one sentence, before any loading."""
    from studio.export import output_of
    from studio.runs import Run

    if isinstance(source, Run):
        output_of(source)


def model_id_of(source) -> str:
    from studio.runs import Run

    if isinstance(source, Run):
        return f"run:{source.id}"
    return str(source)


def cmd_chat(args, home) -> int:
    from studio.arena import Arena
    from studio.infer import ChatSettings
    from studio.runs import RunStore

    if not args.prompt.strip():
        raise UserError("chatcli.empty_prompt")
    settings = ChatSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                            top_k=args.top_k, repetition_penalty=args.repetition_penalty,
                            stop=tuple(args.stop), seed=args.seed)
    source = source_of(args.run, home)
    _check_finished(source)
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": args.prompt}]
    arena = Arena(RunStore(home), allow_paths=True)
    shown = ""
    for text in arena.stream(model_id_of(source), messages, settings):
        if args.stream:
            sys.stdout.write(text[len(shown):])
            sys.stdout.flush()
        shown = text
    if args.stream:
        print(flush=True)
    else:
        print(shown, flush=True)
    return 0


def cmd_export(args, home) -> int:
    from studio.export import archive, merge_and_save, save_adapter

    source = source_of(args.run, home)
    if isinstance(source, str):  # a base model name: nothing was trained
        raise UserError("export.nothing_to_export", run=source)
    folder = merge_and_save(source, args.out, args.shard_size) if args.merge else save_adapter(source, args.out)
    print(t("chatcli.exported", folder=str(folder)), flush=True)
    if args.zip:
        print(t("chatcli.archived", path=str(archive(folder))), flush=True)
    return 0


def cmd_serve(args, home) -> int:
    from studio.security import check_listen
    from studio.serve import serve

    check_listen(args.host, args.port)  # before the model loads, not a uvicorn error after it
    _check_finished(source_of(args.run, home))
    return serve(args.run.strip(), home, host=args.host, port=args.port, api_key=args.api_key,
                 trust_remote_code=args.allow_remote_code)


COMMANDS = {"chat": cmd_chat, "export": cmd_export, "serve": cmd_serve}
