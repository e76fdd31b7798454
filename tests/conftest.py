"""Shared helpers: run the real `ml-lifecycle` command, copy the demo project into a temp folder."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "ml-lifecycle"
BENTOML_HOME = Path(tempfile.mkdtemp(prefix="ml-lifecycle-tests-bentoml-"))  # never the user's ~/bentoml


def cli(*args: str | os.PathLike, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `ml-lifecycle ARGS` as a user would, returning the completed process (text output)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ML_LIFECYCLE_")}
    full_env.update(BENTOML_HOME=str(BENTOML_HOME), BENTOML_DO_NOT_TRACK="True")  # Bentos built by tests stay here
    full_env.update(env or {})
    return subprocess.run([str(CLI), *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def copy_demo_project(dest: Path) -> Path:
    """Copy the repo's demo project (settings, experiment, bentofile, contract, data, pipelines) to `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("settings.ini", "experiment.yaml", "bentofile.yaml"):
        shutil.copy(REPO / f, dest / f)
    for d in ("contracts", "data", "pipelines"):
        shutil.copytree(REPO / d, dest / d, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    return dest


@pytest.fixture
def demo_project(tmp_path: Path) -> Path:
    return copy_demo_project(tmp_path / "demo")


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory):
    """The demo pipeline run twice: once as shipped, once with an impossible gate set from the environment."""
    project = copy_demo_project(tmp_path_factory.mktemp("e2e") / "demo")
    first = cli("run", cwd=project)
    second = cli("run", cwd=project, env={"ML_LIFECYCLE_GATES__MIN_ROC_AUC": "0.99"})
    return project, first, second


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`dev.py test` runs `-n 2 --dist loadgroup`) the tests that share the session's demo
    runs go to one worker, so the two pipeline runs behind them are made once; the other tests spread freely."""
    for item in items:
        if "demo_runs" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("demo_runs"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Poll `url` until it answers 200; fail if `proc` exits or `timeout` seconds pass (bounded loop)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.5)


class Server:
    """A server command (`bentoml serve ...`, `ml-lifecycle serve ...`) on 127.0.0.1 and a free port, stopped by
    process group on exit; requests are bounded by a timeout."""

    def __init__(self, env: dict, cmd: list, cwd: Path | None = None):
        self.port, self.env = free_port(), env
        self.proc = subprocess.Popen([*map(str, cmd), "--port", str(self.port)], env=env, cwd=cwd,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def __enter__(self) -> Server:
        try:
            wait_for_http(f"http://127.0.0.1:{self.port}/readyz", self.proc, timeout=90)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)

    def post(self, path: str, body: bytes) -> tuple[int, dict]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method="POST", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def predict(self, records: list) -> tuple[int, dict]:
        return self.post("/predict", json.dumps({"records": records}).encode())
