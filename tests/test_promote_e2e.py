"""The promotion drill: promote a worse model by force, serve it, roll back, serve the previous one again."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import CLI, Server, cli

pytestmark = pytest.mark.slow
WORSE = {"ML_LIFECYCLE_GATES__MIN_ROC_AUC": "0.99"}  # the gate demo version 2 failed in its pipeline run
RECORD = {"age": 40, "income": 52000.0, "debt_ratio": 0.3, "credit_lines": 5, "late_payments": 0,
          "tenure_months": 100, "region": "north", "employment": "salaried"}


@pytest.fixture
def drill(demo_runs, tmp_path):
    """A private copy of the demo project after its two runs (v1 champion, v2 failed the gate) and a BentoML home."""
    project, *_ = demo_runs
    dest = shutil.copytree(project, tmp_path / "drill", ignore=shutil.ignore_patterns("runs", "deploy"))
    env = {"BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    return Path(dest), env


def _served_version(project: Path, env: dict, *args: str) -> str:
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("ML_LIFECYCLE_")}, **env}
    with Server(full, [CLI, "serve", *args], cwd=project) as server:
        status, body = server.predict([RECORD])
    assert status == 200, body
    return body["model_version"]


def test_promote_force_serve_rollback_serve(drill):
    project, env = drill
    r = cli("promote", "2", cwd=project, env={**env, **WORSE})
    assert r.returncode == 1 and "failed 1 gate(s): roc_auc >= 0.99" in r.stderr and "Traceback" not in r.stderr
    assert not (project / "deploy" / "champion.json").exists()

    r = cli("promote", "2", "--force", "--reason", "drill: ship v2 anyway", cwd=project, env={**env, **WORSE})
    assert r.returncode == 0 and "champion: v1 -> v2  FORCED" in r.stdout, r.stdout + r.stderr
    assert json.loads((project / "deploy" / "champion.json").read_text())["bento"].startswith("demo_model:v2-")
    assert _served_version(project, env) == "2"

    r = cli("rollback", "--reason", "v2 is worse", cwd=project, env=env)
    assert r.returncode == 0 and "champion: v2 -> v1" in r.stdout, r.stdout + r.stderr
    assert json.loads((project / "deploy" / "champion.json").read_text())["bento"].startswith("demo_model:v1-")
    assert _served_version(project, env, "--alias", "champion") == "1"  # the alias, resolved in the registry

    r = cli("history", cwd=project, env=env)
    lines = [line for line in r.stdout.splitlines() if "champion:" in line]
    assert len(lines) == 3 and "champion now: v1" in r.stdout and "deployed: Bento demo_model:v1-" in r.stdout
    assert "(none) -> v1" in lines[0] and "gates passed" in lines[0]
    assert "v1 -> v2" in lines[1] and "FORCED" in lines[1] and 'reason: "drill: ship v2 anyway"' in lines[1]
    assert "rollback" in lines[2] and "v2 -> v1" in lines[2] and 'reason: "v2 is worse"' in lines[2]
    assert "warning" not in r.stdout

    r = cli("rollback", cwd=project, env=env)  # v1 was the first champion: nothing earlier
    assert r.returncode == 1 and r.stderr.startswith("error: version 1 is the first champion")


def test_package_labels_and_serve_errors(drill):
    project, env = drill
    r = cli("package", "--alias", "champion", cwd=project, env=env)
    assert r.returncode == 0, r.stderr
    for label in ("alias = champion", "model_version = 1", "contract_version = 1", "git_commit = none",
                  "mlflow_run_id = "):
        assert f"label {label}" in r.stdout, r.stdout
    context = Path(r.stdout.split("build context: ")[1].split()[0])
    assert (context / "env" / "docker" / "Dockerfile").is_file() and (context / "bento.yaml").is_file()
    assert cli("package", "9", cwd=project, env=env).stderr == \
        "error: model 'demo_model' has no version 9 (versions: 1, 2)\n"
    assert cli("serve", "nope:v1", cwd=project, env=env).stderr.startswith("error: no Bento 'nope:v1'")


def _log(path: Path):
    from ml_lifecycle.predlog import read_prediction_log
    return read_prediction_log(path)


def test_shadow_and_canary_bentos(drill, tmp_path):
    project, env = drill
    r = cli("package", "1", "--shadow", "2", cwd=project, env=env)
    shadow_tag = r.stdout.split("built Bento ")[1].split()[0]
    assert r.returncode == 0 and re.fullmatch(r"demo_model:v1-[0-9a-f]{8}-shadow-v2", shadow_tag), r.stdout + r.stderr
    assert "label mode = shadow" in r.stdout and "label challenger_version = 2" in r.stdout
    r = cli("package", "1", "--canary", "2", "--fraction", "0.5", cwd=project, env=env)
    canary_tag = r.stdout.split("built Bento ")[1].split()[0]
    assert r.returncode == 0 and canary_tag == shadow_tag.replace("shadow", "canary"), r.stdout + r.stderr
    assert cli("package", "1", "--fraction", "0.5", cwd=project, env=env).stderr.startswith("error: --fraction")

    full = {**{k: v for k, v in os.environ.items() if not k.startswith("ML_LIFECYCLE_")}, **env}
    shadow_log = tmp_path / "shadow.jsonl"
    with Server({**full, "ML_LIFECYCLE_MONITORING__PREDICTION_LOG": str(shadow_log)},
                [CLI, "serve", shadow_tag], cwd=project) as server:
        answers = [server.predict([RECORD]) for _ in range(5)]
    assert {(status, body["model_version"]) for status, body in answers} == {(200, "1")}
    logged = _log(shadow_log)  # written after the answers; complete once the server stopped normally
    assert len(logged) == 5 and set(logged["model_version"]) == {"1"}
    assert all(s["model_version"] == "2" and len(s["outputs"]) == 1 for s in logged["shadow"])

    canary_log = tmp_path / "canary.jsonl"
    with Server({**full, "ML_LIFECYCLE_MONITORING__PREDICTION_LOG": str(canary_log)},
                [CLI, "serve", canary_tag], cwd=project) as server:
        versions = [server.predict([RECORD])[1]["model_version"] for _ in range(40)]
    assert versions.count("1") > 0 and versions.count("2") > 0  # 0.5 each: all 40 alike has p = 2e-12
    logged = _log(canary_log)
    assert list(logged["model_version"]) == versions
    assert [r == "canary" for r in logged["route"]] == [v == "2" for v in versions]


def test_concurrent_promotes_have_one_winner_and_one_clear_refusal(drill):
    """Compare-and-set: of two promotes judged against the same champion, one moves it and the other refuses,
    naming the move; every event is judged against the champion it actually replaced."""
    import subprocess

    from mlflow import MlflowClient

    from ml_lifecycle.evals import GateResult, Verdict
    from ml_lifecycle.registry import REGISTRATION_TAG, champion_chain, history, register_model
    from ml_lifecycle.settings import load_settings

    project, env = drill
    settings = load_settings(project / "settings.ini", env={})
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    v1 = client.get_model_version("demo_model", "1")
    failed = Verdict((GateResult("roc_auc >= 0.99", "roc_auc", 0.8, 0.99, False),))
    tags = {k: v for k, v in v1.tags.items() if not k.startswith("gates.") and k != REGISTRATION_TAG}
    assert register_model(settings, v1.source, v1.run_id, failed, tags).version == "3"  # a third candidate
    before = len(history(settings))
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("ML_LIFECYCLE_")}, **env}
    for round_ in range(10):
        champion = str(client.get_model_version_by_alias("demo_model", "champion").version)
        others = [v for v in ("1", "2", "3") if v != champion]
        procs = [subprocess.Popen([str(CLI), "promote", v, "--force", "--reason", f"race {round_}", "--no-deploy"],
                                  cwd=project, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for v in others]
        done = [(p.wait(timeout=300), *p.communicate()) for p in procs]
        codes = sorted(rc for rc, _, _ in done)
        assert codes == [0, 1], done
        winner = others[[rc for rc, _, _ in done].index(0)]
        _, out, err = done[[rc for rc, _, _ in done].index(1)]
        assert err.strip() == f"error: champion changed from v{champion} to v{winner} while judging; run again", err
        events = history(settings)
        assert (events[-1].from_version, events[-1].to_version) == (champion, winner)
        assert str(client.get_model_version_by_alias("demo_model", "champion").version) == winner
    events = history(settings)
    assert len(events) == before + 10 and champion_chain(events)[-1] == winner
