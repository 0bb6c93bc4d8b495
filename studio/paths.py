"""Where things live: the studio home (runs, uploads) and the bundled demo assets.

The home is `--home`, else `$STUDIO_HOME`, else `~/.finetune-studio` — never the current
directory, so the same runs show up wherever the studio is started from. Bundled names
('demo', 'demo-en', 'demo-zh', 'demo-dpo') resolve to absolute paths under `assets/`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from studio.errors import UserError

ASSETS = Path(os.environ.get("STUDIO_ASSETS", Path(__file__).resolve().parent.parent / "assets"))
DEMO_MODEL = ASSETS / "model"
DEMO_RECIPE = ASSETS.parent / "recipes" / "demo.yaml"  # what the Train form starts from
DEMO_DATA = {
    "demo-en": ASSETS / "data" / "demo_en.json",
    "demo-zh": ASSETS / "data" / "demo_zh.json",
    "demo-dpo": ASSETS / "data" / "demo_dpo.json",
}


def studio_home(home: str | os.PathLike | None = None) -> Path:
    chosen = home or os.environ.get("STUDIO_HOME")
    if chosen:
        path = expand_user(chosen, strict=True).resolve()
    else:
        try:
            path = Path.home() / ".finetune-studio"
        except RuntimeError:  # no $HOME and no passwd entry (a container run as an arbitrary uid)
            raise UserError("security.no_default_home") from None
    path.mkdir(parents=True, exist_ok=True)
    use_home_caches(path)  # every way of opening a home keeps the library caches inside it
    return path


def expand_user(path: str | os.PathLike, strict: bool = False) -> Path:
    """`Path(path).expanduser()`, without the traceback.

    Python raises RuntimeError for '~name' when this machine has no user 'name', and for '~'
    when it cannot find the current user's home (no $HOME and no passwd entry, as in some
    containers). The path then stays as written, as a shell leaves it: a path that does not
    exist, so the caller's own 'not found' sentence applies. With strict=True (a folder the
    studio would create, where a literal '~name' folder in the current directory would surprise)
    a UserError says why instead.
    """
    try:
        return Path(path).expanduser()
    except RuntimeError:
        if not strict:
            return Path(path)
        user = str(path).split(os.sep, 1)[0]
        raise UserError("security.no_home_folder", path=str(path), user=user) from None


# Hugging Face cache variables -> their folder under <home>/cache/.
HF_CACHES = {"HF_DATASETS_CACHE": "datasets", "HF_HUB_CACHE": "hub", "HF_ASSETS_CACHE": "assets",
             "HF_XET_CACHE": "xet"}
_caches_set: dict[str, str] = {}  # what this process chose, so a later home replaces it
_opened_home: list[Path] = []  # the home this process opened last (see current_home)


def use_home_caches(home: str | os.PathLike) -> dict[str, str]:
    """Keep the `datasets` and Hub caches under `<home>/cache/` for this process; returns them.

    Call where a home is opened (CLI, Workspace). A cache variable the user set in the
    environment is left alone (they chose it). `datasets` and `huggingface_hub` read these
    variables once, at import, so already imported modules are pointed at the new folders too.
    """
    import sys

    _opened_home[:] = [Path(home).resolve()]
    chosen = {}
    for variable, folder in HF_CACHES.items():
        current = os.environ.get(variable)
        user_set = current and current != _caches_set.get(variable)
        chosen[variable] = current if user_set else str(Path(home).resolve() / "cache" / folder)
        os.environ[variable] = _caches_set[variable] = chosen[variable]
    if "datasets" in sys.modules:
        from datasets import config

        config.HF_DATASETS_CACHE = Path(chosen["HF_DATASETS_CACHE"])
        config.DOWNLOADED_DATASETS_PATH = config.HF_DATASETS_CACHE / config.DOWNLOADED_DATASETS_DIR
        config.EXTRACTED_DATASETS_PATH = config.DOWNLOADED_DATASETS_PATH / config.EXTRACTED_DATASETS_DIR
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        constants.HF_HUB_CACHE = chosen["HF_HUB_CACHE"]
        constants.HF_ASSETS_CACHE = chosen["HF_ASSETS_CACHE"]
        constants.HF_XET_CACHE = chosen["HF_XET_CACHE"]
    return chosen


def resolve_model_path(name: str) -> str:
    """'demo' -> the bundled model; an existing local folder -> its absolute path; else a Hub id."""
    if name == "demo":
        return str(DEMO_MODEL)
    local = expand_user(name)
    return str(local.resolve()) if local.exists() else name


def resolve_data_path(name: str) -> str:
    """A bundled name -> its file; 'library:<id>' -> that library dataset's train.jsonl; a local
    path -> absolute; anything else (a Hub id, a missing file) unchanged."""
    if name in DEMO_DATA:
        return str(DEMO_DATA[name])
    if is_library_ref(name):
        folder = library_dir(name)
        return str(folder / "train.jsonl") if folder is not None else name
    local = expand_user(name)
    return str(local.resolve()) if local.exists() else name


# ---- the dataset library: prepared datasets under <home>/datasets/<id>/ (studio.library) ----------

LIBRARY_PREFIX = "library:"
LIBRARY_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,79}")  # '<slug>-<hash8>': never a path


def current_home() -> Path:
    """The home this process opened last (`studio_home`, a Workspace), else the default one.

    `library:<id>` references in a config name no home; they resolve against the home the
    command or the UI opened, the one whose runs they train."""
    return _opened_home[0] if _opened_home else studio_home()


def is_library_ref(text) -> bool:
    return isinstance(text, str) and text.strip().startswith(LIBRARY_PREFIX)


def library_dir(ref: str, home: str | os.PathLike | None = None) -> Path | None:
    """'library:<id>' -> <home>/datasets/<id> (which may not exist); None when the id is not
    a valid library id (so no reference can point outside the library folder)."""
    dataset_id = ref.strip()[len(LIBRARY_PREFIX):].strip() if is_library_ref(ref) else ""
    if not LIBRARY_ID.fullmatch(dataset_id):
        return None
    return Path(home).resolve() / "datasets" / dataset_id if home else current_home() / "datasets" / dataset_id
