"""Packaging registered versions as Bentos and serving them with BentoML's real server on 127.0.0.1."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import Server, free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent

BUILD = """
import sys
import ml_lifecycle as ml
from ml_lifecycle.packaging import build_bento
from ml_lifecycle.registry import resolve_version
s = ml.load_settings("settings.ini")
for v in sys.argv[1:]:
    print(build_bento(s, resolve_version(s, version=v)))
"""


@pytest.fixture(scope="module")
def bentos(demo_runs, tmp_path_factory):
    """Bentos for demo versions 1 and 2, in a throw-away BentoML home."""
    project, *_ = demo_runs
    env = {**os.environ, "BENTOML_HOME": str(tmp_path_factory.mktemp("bentoml")), "BENTOML_DO_NOT_TRACK": "True",
           "ML_LIFECYCLE_MONITORING__PREDICTION_LOG": str(tmp_path_factory.mktemp("logs") / "predictions.jsonl")}
    r = subprocess.run([sys.executable, "-c", BUILD, "1", "2"], cwd=project, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    tags = r.stdout.split()
    assert [t.split("-")[0] for t in tags] == ["demo_model:v1", "demo_model:v2"], tags
    return {**env, "TEST_BENTO_V1": tags[0], "TEST_BENTO_V2": tags[1]}


def test_bento_pins_its_model_and_carries_labels(bentos):
    home = Path(bentos["BENTOML_HOME"])
    for version in ("1", "2"):
        bento_dir = home / "bentos" / "demo_model" / bentos[f"TEST_BENTO_V{version}"].split(":")[1]
        bento = yaml.safe_load((bento_dir / "bento.yaml").read_text())
        assert bento["labels"]["model_version"] == version and bento["labels"]["contract_version"] == "1"
        assert bento["labels"]["alias"] == "none" and bento["labels"]["git_commit"] == "none"  # not a git repo
        assert len(bento["labels"]["mlflow_run_id"]) == 32
        model_tag = bento["args"]["model_tag"]
        assert model_tag.startswith("demo_model:")
        assert [m["tag"] for m in bento["services"][0]["models"]] == [model_tag]
        assert (bento_dir / "env" / "docker" / "Dockerfile").is_file()


RECORDS = [
    {"age": 40, "income": 52000.0, "debt_ratio": 0.3, "credit_lines": 5, "late_payments": 0, "tenure_months": 100,
     "region": "north", "employment": "salaried"},
    {"age": 30, "debt_ratio": 1.9, "credit_lines": 2, "late_payments": 4, "tenure_months": 3, "region": "south",
     "employment": "unemployed"},
]


def test_each_bento_serves_exactly_its_version(bentos, tmp_path):
    # version 2 is newer in both the registry and the BentoML model store; the v1 Bento must still serve v1.
    # v1 is served as a user would from a shell in the project folder, with no log setting: its prediction log
    # goes to that folder's logs/ (where `monitor` reads), not inside the Bento store's src/
    plain = {k: v for k, v in bentos.items() if k != "ML_LIFECYCLE_MONITORING__PREDICTION_LOG"}
    for version, env in (("1", {**plain, "PWD": str(tmp_path)}), ("2", bentos)):
        with Server(env, [BIN / "bentoml", "serve", bentos[f"TEST_BENTO_V{version}"], "--host", "127.0.0.1"],
                    cwd=tmp_path) as server:
            status, out = server.predict(RECORDS)
        assert status == 200 and out["model_version"] == version
        if version == "1":
            assert json.loads((tmp_path / "logs/predictions.jsonl").read_text())["model_version"] == "1"
        assert [p["label"] for p in out["predictions"]] == [0, 1]
        assert all(abs(sum(p["scores"].values()) - 1) < 1e-5 for p in out["predictions"])


class LoggedServer(Server):
    """A `Server` whose output (the service's log) goes to the file `log`."""

    def __init__(self, env: dict, cmd: list, log: Path):
        self.port, self.env, self.log = free_port(), env, log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([*map(str, cmd), "--port", str(self.port)], env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def served_v1(bentos, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    with LoggedServer(bentos, [BIN / "bentoml", "serve", bentos["TEST_BENTO_V1"], "--host", "127.0.0.1"], log) as server:
        yield server


def _pyfunc(project: Path, version: str):
    import ml_lifecycle as ml
    from ml_lifecycle import tracking
    return tracking.load_pyfunc(f"models:/demo_model/{version}", ml.load_settings(project / "settings.ini", env={}))


def test_one_bad_row_is_rejected_identically_at_all_three_enforcement_points(demo_runs, served_v1):
    import pandas as pd

    import ml_lifecycle as ml
    project, *_ = demo_runs
    contract = ml.load_contract(project / "contracts" / "credit_default.yaml")
    bad = {**RECORDS[0], "age": 130, "region": "atlantis"}
    expected = {("age", "max <= 100"), ("region", "allowed ['east', 'north', 'south', 'west']")}

    # 1. the batch validator, on the row as a table (target and key added; table-level row counts left out)
    report = ml.validate(pd.DataFrame([{**bad, "customer_id": 1, "defaulted": 0}]), contract)
    assert {(v.column, v.rule) for v in report.errors if v.column != "*"} == expected

    # 2. the running service: the pydantic model compiled from the contract, a 422 naming column and rule
    status, body = served_v1.predict([RECORDS[1], bad])
    assert status == 422 and body["model_version"] == "1"
    assert {(v["column"], v["rule"]) for v in body["violations"]} == expected
    assert all(v["examples"][0]["row"] == 1 for v in body["violations"])

    # 3. the logged MLflow model (signature from the contract, contract checked by its pyfunc predict)
    with pytest.raises(ml.ContractViolation) as err:
        _pyfunc(project, "1").predict(pd.DataFrame([bad]))
    assert {(v.column, v.rule) for v in err.value.violations} == expected


def test_served_predictions_equal_batch_scoring(demo_runs, served_v1):
    import pandas as pd

    import ml_lifecycle as ml
    project, *_ = demo_runs
    rows = ml.read_table(project / "data" / "demo.csv").sample(40, random_state=1)
    records = json.loads(rows.drop(columns=["defaulted"]).to_json(orient="records"))
    batch = _pyfunc(project, "1").predict(pd.DataFrame(records))
    status, body = served_v1.predict(records)
    assert status == 200 and len(body["predictions"]) == 40
    served = pd.DataFrame([p["scores"] for p in body["predictions"]])[list(batch.columns)]
    assert (served.to_numpy() == batch.to_numpy()).all()  # identical, not merely close


@pytest.mark.parametrize("body, rule", [
    (b'{"records": []}', "rows >= 1"),
    (b'{"records": [{"age": NaN}]}', "finite"),
    (b'{"records": [{"age": "40"}]}', "dtype int"),
])
def test_malformed_requests_get_a_422_naming_the_rule(served_v1, body, rule):
    status, out = served_v1.post("/predict", body)
    assert status == 422 and rule in {v["rule"] for v in out["violations"]}, out


def test_openapi_documents_the_contract_request_type(served_v1):
    with urllib.request.urlopen(f"http://127.0.0.1:{served_v1.port}/docs.json", timeout=10) as r:
        doc = json.loads(r.read())
    text = json.dumps(doc)
    assert "CreditDefaultRecord" in text and '"maximum": 100' in text and "atlantis" not in text
    # the response type comes from the contract's target too: a 0/1 label and a score per class
    assert "the model version that answered" in text and '"enum": [0, 1]' in text and "predicted defaulted" in text


def test_one_record_endpoint_health_and_body_limit(served_v1):
    status, out = served_v1.post("/predict_one", json.dumps({"record": RECORDS[1]}).encode())
    assert status == 200 and out["model_version"] == "1" and out["prediction"]["label"] == 1, out
    status, out = served_v1.post("/predict_one", json.dumps({"record": [RECORDS[1]]}).encode())
    assert status == 422 and "record must be a JSON object" in json.dumps(out), out
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(f"http://127.0.0.1:{served_v1.port}{path}", timeout=10) as r:
            assert r.status == 200
    huge = json.dumps({"records": [RECORDS[0]] * 12000}).encode()  # ~2 MB, over the 1 MiB default
    status, out = served_v1.post("/predict", huge)
    assert status == 413 and out["error"] == f"request body is {len(huge)} bytes; the limit is 1048576 (max_body_bytes)"


def test_every_request_is_in_the_prediction_log_after_a_normal_stop(bentos, tmp_path):
    from ml_lifecycle.predlog import read_prediction_log
    log = tmp_path / "predictions.jsonl"
    env = {**bentos, "ML_LIFECYCLE_MONITORING__PREDICTION_LOG": str(log)}
    from concurrent.futures import ThreadPoolExecutor
    burst = [[{**RECORDS[0], "tenure_months": i}] * 100 for i in range(300)]  # 100-record requests, told apart
    with Server(env, [BIN / "bentoml", "serve", bentos["TEST_BENTO_V2"], "--host", "127.0.0.1"]) as server:
        for _ in range(3):
            assert server.predict(RECORDS)[0] == 200
        assert server.predict([{**RECORDS[0], "age": 130}])[0] == 422
        assert server.post("/predict_one", json.dumps({"record": RECORDS[0]}).encode())[0] == 200
        with ThreadPoolExecutor(8) as pool:  # the log is written off the request path: a burst, then a stop
            assert {status for status, _ in pool.map(server.predict, burst)} == {200}
    # the server has stopped (SIGTERM) right after its last answer: every line must be there, each whole
    lines = log.read_text().splitlines()
    assert len(lines) == 5 + len(burst) and all(json.loads(line)["model_version"] == "2" for line in lines)
    logged = read_prediction_log(log)
    assert list(logged["status"][:5]) == [200, 200, 200, 422, 200] and set(logged["model_version"]) == {"2"}
    assert list(logged["endpoint"]) == ["predict"] * 4 + ["predict_one"] + ["predict"] * len(burst)
    assert logged["inputs"][0] == RECORDS and len(logged["outputs"][0]) == 2 and logged["outputs"][3] is None
    assert logged["violations"][3][0]["column"] == "age" and (logged["latency_ms"] > 0).all()
    assert sorted(row[0]["tenure_months"] for row in logged["inputs"][5:]) == list(range(len(burst)))
    assert all(len(out) == 100 for out in logged["outputs"][5:])


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(served_v1):
    import time
    from concurrent.futures import ThreadPoolExecutor

    from ml_lifecycle.predlog import read_prediction_log
    log = served_v1.env["ML_LIFECYCLE_MONITORING__PREDICTION_LOG"]
    before = len(read_prediction_log(log))
    requests = [[RECORDS[i % 2]] * (1 + i % 3) for i in range(48)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(served_v1.predict, requests))
    assert all(status == 200 for status, _ in answers)
    for records, (_, body) in zip(requests, answers, strict=True):
        assert [p["label"] for p in body["predictions"]] == [[0, 1][RECORDS.index(r)] for r in records]
    deadline = time.monotonic() + 30  # the log's writer thread appends the lines just after the answers
    while len(logged := read_prediction_log(log)) < before + 48 and time.monotonic() < deadline:
        time.sleep(0.1)
    logged = logged.tail(48)
    assert len(logged) == 48 and logged["inputs"].map(len).sum() == sum(map(len, requests))
    assert logged["batched"].max() > 1, logged["batched"].tolist()  # requests shared model calls


def _raw(server, path: str, body: bytes, content_type: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": content_type} if content_type else {}
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method="POST", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("path, body, content_type, status, error", [
    ("/predict", b"--x\r\n", "multipart/form-data", 415,
     "Content-Type 'multipart/form-data' is not accepted: POST /predict takes application/json"),
    ("/predict_one", b"record=1", "application/x-www-form-urlencoded", 415,
     "Content-Type 'application/x-www-form-urlencoded' is not accepted: POST /predict_one takes application/json"),
    ("/predict", b"", "application/json", 400, 'request body is empty; send a JSON object {"records": ...}'),
    ("/predict", b'{"records": [', "application/json", 400,
     "request body is not valid JSON: EOF while parsing a list at line 1 column 13"),
    ("/predict", b'{"records": {}}', "application/json", 400,
     "field 'records' must be a JSON array of records, got an object"),
    ("/predict", b'{"records": [], "recrods": []}', "application/json", 400,
     "request body has unexpected field 'recrods'; its only field is 'records'"),
    ("/predict_one", b"[1, 2]", "application/json; charset=utf-8", 400,
     'request body must be a JSON object {"record": ...}, got an array'),
])
def test_malformed_bodies_get_a_one_line_client_error(served_v1, path, body, content_type, status, error):
    assert _raw(served_v1, path, body, content_type) == (status, {"error": error})


def test_openapi_documents_every_status_and_requires_the_body(served_v1):
    with urllib.request.urlopen(f"http://127.0.0.1:{served_v1.port}/docs.json", timeout=10) as r:
        doc = json.loads(r.read())
    for route in ("/predict", "/predict_one"):
        op = doc["paths"][route]["post"]
        assert op["requestBody"]["required"] is True and list(op["requestBody"]["content"]) == ["application/json"]
        assert {"200", "400", "413", "415", "422", "500"} == set(op["responses"]), route
    errors = doc["components"]["schemas"]
    assert errors["ClientError"]["properties"] == {"error": {"type": "string",
                                                             "description": "what is wrong, and where, in one line"}}
    assert errors["Rejection"]["required"] == ["error", "model_version", "violations"]


def test_schemathesis_finds_no_server_error_and_no_schema_violation(served_v1, tmp_path):
    """The OpenAPI fuzzer, every check, about 200 examples per operation, against the served document."""
    import xml.etree.ElementTree as ET
    junit = tmp_path / "schemathesis.xml"
    r = subprocess.run([BIN / "st", "run", f"http://127.0.0.1:{served_v1.port}/docs.json", "--checks", "all",
                        "--max-examples", "200", "--seed", "1", "--generation-database", "none", "--no-color",
                        "--continue-on-failure", "--request-timeout", "30", "--report", "junit",
                        "--report-junit-path", junit], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = r.stdout[-6000:]
    assert r.returncode == 0, summary
    suite = ET.parse(junit).getroot()
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0"), summary
    tested = {case.get("name") for case in suite.iter("testcase")}
    assert {"POST /predict", "POST /predict_one"} <= tested, tested
    assert re.search(r"(\d+) generated, \1 passed", summary), summary
    # what the fuzzer sent included malformed input; each refusal was one WARNING line, never a traceback
    log = served_v1.log.read_text(errors="replace")
    assert "Traceback" not in log and "[ERROR]" not in log, log[-3000:]
    assert "[WARNING]" in log and " 415 POST /predict" in log and " 400 POST /predict" in log
