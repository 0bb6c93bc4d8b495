"""Cold start and click-to-first-loss-point of the studio, against bare Gradio in the same run.

    .venv/bin/python benchmarks/ui_latency.py [--repeat 3]

1. Cold start: `studio ui` in a fresh process until the first HTTP 200, next to a bare
   `gr.Blocks().launch()` started the same way (the floor any Gradio app pays). Target ≤ 10 s.
2. Start → first loss point: headless Chromium opens the studio, clicks Start with the demo
   defaults, and waits until the loss plot draws its first line. Target ≤ 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

BARE = ("import gradio as gr, sys\nwith gr.Blocks() as demo:\n    gr.Markdown('hello')\n"
        "demo.launch(server_port=int(sys.argv[1]))")


def time_to_200(cmd: list[str], port: int) -> tuple[float, subprocess.Popen]:
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - began, proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited")
            time.sleep(0.05)


def start_to_first_loss(url: str) -> float:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#start-btn")
        page.wait_for_timeout(1500)  # let the page settle, as a person reading it would
        began = time.perf_counter()
        page.click("#start-btn")
        page.wait_for_selector("#loss-plot .mark-line path", timeout=60000)
        seconds = time.perf_counter() - began
        page.click("#stop-btn")
        page.wait_for_function("() => document.querySelector('#train-status').innerText.includes('Stopped')",
                               timeout=60000)
        browser.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bare, studio, first_loss = [], [], []
    for _ in range(args.repeat):
        port = free_port()
        seconds, proc = time_to_200([sys.executable, "-c", BARE, str(port)], port)
        proc.terminate(); proc.wait()
        bare.append(seconds)
        home = Path(tempfile.mkdtemp())
        port = free_port()
        seconds, proc = time_to_200([sys.executable, "-m", "studio", "ui", "--home", str(home),
                                     "--port", str(port)], port)
        studio.append(seconds)
        try:
            first_loss.append(start_to_first_loss(f"http://127.0.0.1:{port}/"))
        finally:
            proc.terminate(); proc.wait()
            shutil.rmtree(home, ignore_errors=True)
        print(f"bare gradio {bare[-1]:.1f} s · studio {studio[-1]:.1f} s · start→first loss {first_loss[-1]:.1f} s",
              flush=True)
    result = {"bare_gradio_cold_start_s": min(bare), "studio_cold_start_s": min(studio),
              "cold_start_ratio_vs_bare": min(studio) / min(bare),
              "start_to_first_loss_s": min(first_loss), "start_to_first_loss_median_s": sorted(first_loss)[len(first_loss) // 2]}
    print(json.dumps(result, indent=1))
    ok = result["studio_cold_start_s"] <= 10 and result["start_to_first_loss_median_s"] <= 10
    print("PASS" if ok else "FAIL", "(targets: cold start ≤ 10 s, start → first loss ≤ 10 s)")


if __name__ == "__main__":
    main()
