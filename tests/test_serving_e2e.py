"""Packaging registered versions as Bentos and serving them with BentoML's real server on 127.0.0.1."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import REPO, free_port, wait_for_http

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent

BUILD = """
import sys
import ml_lifecycle as ml
from ml_lifecycle.packaging import build_bento, resolve_version
s = ml.load_settings("settings.ini")
for v in sys.argv[1:]:
    print(build_bento(s, resolve_version(s, version=v), sys.argv[0]))
"""


@pytest.fixture(scope="module")
def bentos(demo_runs, tmp_path_factory):
    """Bentos for demo versions 1 and 2, in a throw-away BentoML home."""
    project, *_ = demo_runs
    env = {**os.environ, "BENTOML_HOME": str(tmp_path_factory.mktemp("bentoml")), "BENTOML_DO_NOT_TRACK": "True"}
    r = subprocess.run([sys.executable, "-c", BUILD.replace("sys.argv[0]", repr(str(REPO / "bentofile.yaml"))),
                        "1", "2"], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ml_lifecycle:v1", "ml_lifecycle:v2"]
    return env


def test_bento_pins_its_model_and_carries_labels(bentos):
    home = Path(bentos["BENTOML_HOME"])
    for version in ("1", "2"):
        bento = yaml.safe_load((home / "bentos" / "ml_lifecycle" / f"v{version}" / "bento.yaml").read_text())
        assert bento["labels"]["model_version"] == version and bento["labels"]["contract_version"] == "1"
        assert len(bento["labels"]["mlflow_run_id"]) == 32
        model_tag = bento["args"]["model_tag"]
        assert model_tag.startswith("demo_model:")
        assert [m["tag"] for m in bento["services"][0]["models"]] == [model_tag]
        assert (home / "bentos" / "ml_lifecycle" / f"v{version}" / "env" / "docker" / "Dockerfile").is_file()


def _serve_and_predict(env: dict, tag: str, records: list[dict]) -> dict:
    port = free_port()
    proc = subprocess.Popen([str(BIN / "bentoml"), "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", proc, timeout=90)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", method="POST",
                                     data=json.dumps({"records": records}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
            return json.loads(r.read())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


RECORDS = [
    {"age": 40, "income": 52000.0, "debt_ratio": 0.3, "credit_lines": 5, "late_payments": 0, "tenure_months": 100,
     "region": "north", "employment": "salaried"},
    {"age": 30, "debt_ratio": 1.9, "late_payments": 4, "region": "south", "employment": "unemployed"},
]


def test_each_bento_serves_exactly_its_version(bentos):
    # version 2 is newer in both the registry and the BentoML model store; the v1 Bento must still serve v1
    for version in ("1", "2"):
        out = _serve_and_predict(bentos, f"ml_lifecycle:v{version}", RECORDS)
        assert out["model_version"] == version
        assert [p["label"] for p in out["predictions"]] == [0, 1]
        assert all(abs(sum(p["scores"].values()) - 1) < 1e-5 for p in out["predictions"])
