"""A password in the tracking URI never spreads: the demo pipeline runs against a real `mlflow server` behind
basic auth, with the password in settings.ini, and the password appears in no output, no produced file (run
folders, snapshots, executed notebooks, the Bento, the deployment pointer) and no MLflow param, tag or artifact."""
from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import BENTOML_HOME, cli, copy_demo_project, free_port
from mlflow import MlflowClient

pytestmark = pytest.mark.slow
PASSWORD = "Zq7-secret-Pa55w0rd"  # distinctive, so a grep finds every copy


@pytest.fixture
def auth_server(tmp_path):
    """`mlflow server --app-name basic-auth` on 127.0.0.1 with its own sqlite stores; stopped by process group."""
    root = tmp_path / "server"
    root.mkdir()
    (root / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root}/auth.db\nadmin_username = admin\nadmin_password = {PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    port = free_port()
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(root / "auth.ini"),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key", "MLFLOW_DISABLE_TELEMETRY": "true"}
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen([str(mlflow_cli), "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
                             "--artifacts-destination", str(root / "artifacts")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    token = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    deadline = time.monotonic() + 120
    try:
        while True:  # bounded: the deadline, or the server's exit
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1",
                                             headers={"Authorization": f"Basic {token}"})
                with urllib.request.urlopen(req, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield port, root
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _files_holding(folder: Path, needle: bytes, skip: set[Path] = frozenset()) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and p not in skip and needle in p.read_bytes()]


def test_a_password_in_the_tracking_uri_never_leaks(auth_server, tmp_path, monkeypatch):
    port, server_root = auth_server
    project = copy_demo_project(tmp_path / "demo")
    settings_ini = project / "settings.ini"
    text = settings_ini.read_text()
    uri = f"http://admin:{PASSWORD}@127.0.0.1:{port}"
    assert "uri = sqlite:///mlflow.db" in text
    settings_ini.write_text(text.replace("uri = sqlite:///mlflow.db", f"uri = {uri}"))

    outputs = [cli("run", cwd=project), cli("history", cwd=project), cli("promote", "1", cwd=project)]
    assert outputs[0].returncode == 0, outputs[0].stdout + outputs[0].stderr
    assert "registered demo_model version 1" in outputs[0].stdout
    assert f"see it at http://127.0.0.1:{port}" in outputs[0].stdout
    for out in outputs:
        assert PASSWORD not in out.stdout + out.stderr, out.args

    needle = PASSWORD.encode()
    assert _files_holding(project, needle, {settings_ini}) == []  # runs/, deploy/, snapshots, notebooks
    assert _files_holding(server_root / "artifacts", needle) == []  # everything logged to MLflow
    assert _files_holding(BENTOML_HOME, needle) == []  # the Bento store

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    client = MlflowClient(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs
    for run in runs:
        values = [*run.data.params.values(), *run.data.tags.values()]
        assert not [v for v in values if PASSWORD in v], run.info.run_id
    versions = client.search_model_versions("name='demo_model'")
    assert versions and not [v for v in versions if PASSWORD in str(v.tags) + (v.description or "")]
