"""Where things live: the studio home (runs, uploads) and the bundled demo assets.

The home is `--home`, else `$STUDIO_HOME`, else `~/.finetune-studio` — never the current
directory, so the same runs show up wherever the studio is started from. Bundled names
('demo', 'demo-en', 'demo-zh', 'demo-dpo') resolve to absolute paths under `assets/`.
"""

from __future__ import annotations

import os
from pathlib import Path

ASSETS = Path(os.environ.get("STUDIO_ASSETS", Path(__file__).resolve().parent.parent / "assets"))
DEMO_MODEL = ASSETS / "model"
DEMO_RECIPE = ASSETS.parent / "recipes" / "demo.yaml"  # what the Train form starts from
DEMO_DATA = {
    "demo-en": ASSETS / "data" / "demo_en.json",
    "demo-zh": ASSETS / "data" / "demo_zh.json",
    "demo-dpo": ASSETS / "data" / "demo_dpo.json",
}


def studio_home(home: str | os.PathLike | None = None) -> Path:
    chosen = home or os.environ.get("STUDIO_HOME") or Path.home() / ".finetune-studio"
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_model_path(name: str) -> str:
    """'demo' -> the bundled model; an existing local folder -> its absolute path; else a Hub id."""
    if name == "demo":
        return str(DEMO_MODEL)
    local = Path(name).expanduser()
    return str(local.resolve()) if local.exists() else name


def resolve_data_path(name: str) -> str:
    if name in DEMO_DATA:
        return str(DEMO_DATA[name])
    local = Path(name).expanduser()
    return str(local.resolve()) if local.exists() else name
