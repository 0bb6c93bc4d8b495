"""A real `studio ui` process on a free port with a temporary home, and headless Chromium."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import CHROMIUM, CHROMIUM_ARGS, free_port

class Server:
    def __init__(self, home: Path):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = open(home.parent / "server.log", "w")
        self.started = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "studio", "ui", "--home", str(home), "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.ready_after = self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> float:
        while time.time() - self.started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(Path(self.log.name).read_text()[-3000:])
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    if resp.status == 200:
                        return time.time() - self.started
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("studio did not answer in time")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("ui") / "home")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()
