"""Nothing corrupt is loaded or served: one flipped byte in a registered model's pickle, or in the model inside a
built Bento, is refused with one line naming the file and both digests, before anything is unpickled."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import BENTOML_HOME, cli, free_port
from mlflow import MlflowClient

pytestmark = pytest.mark.slow


def _flip(path: Path, at: int = 200) -> bytes:
    data = path.read_bytes()
    path.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1:])
    return data


@pytest.fixture
def project(demo_runs, tmp_path):
    """A private copy of the demo project after its two runs (v1 champion, v2 challenger)."""
    src, *_ = demo_runs
    return Path(shutil.copytree(src, tmp_path / "p", ignore=shutil.ignore_patterns("runs", "deploy")))


def test_a_flipped_byte_in_a_registered_model_is_refused(project, tmp_path):
    uri = f"sqlite:///{project}/mlflow.db"
    store = MlflowClient(uri, uri)
    model_id = store.get_model_version("demo_model", "1").source.removeprefix("models:/")
    # the copied store still points at the artifacts where they were logged (restored below, whatever happens)
    pkl = Path(store.get_logged_model(model_id).artifact_location.removeprefix("file://")) / "python_model.pkl"
    good = _flip(pkl)
    fresh = {"BENTOML_HOME": str(tmp_path / "bentoml")}  # no Bento of v1 yet: packaging must load the model
    try:
        r = cli("package", "1", cwd=project, env=fresh)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith("error: models:/demo_model/1/python_model.pkl: sha256 ") and "does not match" in line
        # v2 is the same trained model (only the gates changed in its run): promoting it is refused the same way
        r = cli("promote", "2", "--force", "--reason", "try", "--no-deploy", cwd=project)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
        assert r.stderr.startswith("error: models:/demo_model/2/python_model.pkl: sha256 "), r.stderr
    finally:
        pkl.write_bytes(good)
    assert cli("package", "1", cwd=project, env=fresh).returncode == 0  # restored: packaged as before


def test_a_flipped_byte_in_a_bentos_model_is_refused_by_package_and_by_the_server(project):
    r = cli("package", "1", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    tag = next(w for w in r.stdout.split() if w.startswith("demo_model:v1-"))
    (pkl,) = [Path(p) for p in glob.glob(str(BENTOML_HOME / "models/demo_model/*/model.pkl"))
              if _serves(tag, Path(p).parent.name)]
    good = _flip(pkl)
    try:
        r = cli("package", "1", cwd=project)  # the Bento exists: its model is verified, not trusted by its tag
        assert r.returncode == 1 and "Traceback" not in r.stderr and "model.pkl: sha256 " in r.stderr, r.stderr
        env = {k: v for k, v in os.environ.items() if not k.startswith("ML_LIFECYCLE_")}
        env.update(BENTOML_HOME=str(BENTOML_HOME), BENTOML_DO_NOT_TRACK="True")
        served = subprocess.run([sys.executable, "-m", "bentoml", "serve", tag, "--host", "127.0.0.1",
                                 "--port", str(free_port())],
                                cwd=project, env=env, capture_output=True, text=True, timeout=180)
        assert served.returncode != 0 and "model.pkl: sha256 " in served.stderr, served.stderr[-2000:]
        assert "does not match the" in served.stderr
    finally:
        pkl.write_bytes(good)


def _serves(tag: str, model_version: str) -> bool:
    name, version = tag.split(":")
    spec = yaml.safe_load((BENTOML_HOME / "bentos" / name / version / "bento.yaml").read_text())
    return any(m["tag"].split(":")[1] == model_version for svc in spec["services"] for m in svc["models"])
