"""The Hugging Face Space entry point: `python app.py` starts the studio as `studio ui` does.

A Gradio Space runs this file (README front matter: `sdk: gradio`, `app_file: app.py`) after
installing requirements.txt. It is the same code path as the command line (studio.cli.main):
the same home rules (persistent storage under /data when the Space has it), the login from the
`STUDIO_AUTH` secret, demo mode (on by default on a Space; `STUDIO_DEMO=0` turns it off), bound
to 0.0.0.0 on the port the Space expects (`GRADIO_SERVER_PORT`, else `PORT`, else 7860).

    python app.py                        # anywhere: the studio on 0.0.0.0:7860
    STUDIO_DEMO=1 python app.py          # try demo mode locally
"""

from __future__ import annotations

import os
import sys


def space_arguments(environ=None) -> list[str]:
    """`studio ui` arguments for a Space: host and port from the environment Spaces sets."""
    env = os.environ if environ is None else environ
    host = env.get("GRADIO_SERVER_NAME") or "0.0.0.0"
    port = env.get("GRADIO_SERVER_PORT") or env.get("PORT") or "7860"
    return ["ui", "--host", host, "--port", port]


if __name__ == "__main__":  # importing this file (tests, tools) starts nothing
    from studio.cli import main

    sys.exit(main(space_arguments()))
