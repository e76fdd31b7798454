"""Reliability report: every failure the project promises to survive, tried for real in one run, in one table.

Setup: the demo project in a temporary folder, tracked by a real `mlflow server` behind basic auth on 127.0.0.1
with the password in settings.ini (so every phase below also checks that the password never leaks), and a
temporary BentoML home.

1. SIGKILL at every step: `ml-lifecycle run` killed (its whole process group, kernels too) as each step reports
   done, and inside `register` just after MLflow created the version; each next run resumes. Then counts: model
   versions beyond one, MLflow runs left RUNNING, staging leftovers (`.tmp-*`, markers of dead runs).
2. Byte flips: one byte flipped at several offsets of the registered model's pickle (and once in the model inside
   the built Bento), then `ml-lifecycle package`: each must be refused with one line naming the file, no
   traceback. An accepted flip is an undetected corruption.
3. Bounded load: `ml-lifecycle serve`, CLIENTS keep-alive connections for SECONDS (at most MAX_REQUESTS each):
   requests, errors, p99, and the server's memory (RSS of its process tree) at start and end.
4. Mixed bad input: malformed bodies (broken JSON, wrong types, missing fields, wrong content types, a body over
   the limit, NaN literals, deep nesting) interleaved with valid requests: the count of 5xx answers.
5. schemathesis with every check against the served OpenAPI document: its totals.
6. Concurrent promotes: ROUNDS rounds of two `ml-lifecycle promote` racing for the champion: each round must have
   one winner and one clear refusal, and the history one event per round.
7. Secrets: the password is looked for in every command's output and every file produced (project, MLflow
   artifacts, Bento store).

The anchor is the goal itself: zero. The ratio line is the share of requests answered with a 5xx.

    .venv/bin/python benchmarks/reliability.py            # the full report (about 15 minutes on 2 cores)
    .venv/bin/python benchmarks/reliability.py --quick    # a smoke run (CI): one kill, one flip, one round
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUICK = "--quick" in sys.argv
SECONDS, CLIENTS, MAX_REQUESTS = (2.0, 2, 500) if QUICK else (20.0, 8, 20_000)
ROUNDS = 1 if QUICK else 10
EXAMPLES = 10 if QUICK else 200
KILL_AT = ["@version"] if QUICK else ["validate", "train", "evaluate", "@version", "register", "card"]
FLIP_AT = [200] if QUICK else [0, 200, -1, "middle"]
PASSWORD = "Rel-1ab1l1ty-Pa55"  # distinctive, so a byte search finds every copy


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, bool]] = []

    def add(self, check: str, result: str, ok: bool) -> None:
        self.rows.append((check, result, ok))
        print(f"  {'ok  ' if ok else 'FAIL'} {check}: {result}", flush=True)


class Project:
    """The demo project, its environment and every command's output (searched for the password at the end)."""

    def __init__(self, work: Path, tracking_uri: str):
        self.path = work / "demo"
        self.path.mkdir()
        for f in ("settings.ini", "experiment.yaml", "bentofile.yaml"):
            shutil.copy(REPO / f, self.path / f)
        for d in ("contracts", "data", "pipelines"):
            shutil.copytree(REPO / d, self.path / d, ignore=shutil.ignore_patterns("__pycache__"))
        ini = self.path / "settings.ini"
        ini.write_text(ini.read_text().replace("uri = sqlite:///mlflow.db", f"uri = {tracking_uri}"))
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("ML_LIFECYCLE_", "MLFLOW_TRACKING"))},
                    "BENTOML_HOME": str(work / "bentoml"), "BENTOML_DO_NOT_TRACK": "True",
                    "MLFLOW_DISABLE_TELEMETRY": "true",
                    "ML_LIFECYCLE_MONITORING__PREDICTION_LOG": str(work / "predictions.jsonl")}
        self.outputs: list[str] = []

    def cli(self, *args: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
        r = subprocess.run([str(BIN / "ml-lifecycle"), *args], cwd=self.path, env={**self.env, **(env or {})},
                           capture_output=True, text=True, timeout=timeout)
        self.outputs.append(r.stdout + r.stderr)
        return r

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([str(BIN / "ml-lifecycle"), *args], cwd=self.path, env=self.env, text=True,
                                start_new_session=True, **kw)


def auth_server(root: Path) -> tuple[subprocess.Popen, int]:
    """`mlflow server --app-name basic-auth` on 127.0.0.1 with its own stores, ready."""
    (root / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root}/auth.db\nadmin_username = admin\nadmin_password = {PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    port = free_port()
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(root / "auth.ini"), "MLFLOW_DISABLE_TELEMETRY": "true",
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "benchmark-only-key"}
    proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
                             "--artifacts-destination", str(root / "artifacts")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    token = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    deadline = time.monotonic() + 120
    while True:  # bounded by the deadline and by the server's exit
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1",
                                         headers={"Authorization": f"Basic {token}"})
            with urllib.request.urlopen(req, timeout=2):
                return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                raise SystemExit("error: the MLflow tracking server did not start") from None
            time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def group_gone(pgid: int) -> None:
    for _ in range(100):  # bounded: 10 s
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def killed_run(project: Project, at: str, versions) -> bool:
    """Start `ml-lifecycle run` and SIGKILL its process group when `at` reports done ('@version': as soon as
    the registry holds a new version). True if the kill happened before the run ended."""
    before = versions()
    proc = project.popen("run", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    hit, deadline = threading.Event(), time.monotonic() + 900
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if at != "@version" and line.split()[:2] == [at, "done"]:
                hit.set()
                os.killpg(proc.pid, signal.SIGKILL)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while proc.poll() is None and time.monotonic() < deadline and not hit.is_set():
        if at == "@version" and versions() > before:
            hit.set()
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    if proc.poll() is None and not hit.is_set():
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    group_gone(proc.pid)
    reader.join(timeout=10)
    project.outputs.append("".join(lines))
    return hit.is_set()


def flip(path: Path, at: int | str) -> bytes:
    data = path.read_bytes()
    i = len(data) // 2 if at == "middle" else at % len(data)
    path.write_bytes(data[:i] + bytes([data[i] ^ 1]) + data[i + 1:])
    return data


def refused(r: subprocess.CompletedProcess) -> bool:
    """Refused the corrupt artifact in one line, naming the digest, without a traceback."""
    lines = r.stderr.strip().splitlines()
    return r.returncode == 1 and len(lines) == 1 and "sha256" in lines[0] and "Traceback" not in r.stderr


def tree_rss_mb(pid: int) -> float:
    import psutil
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def load(port: int, body: bytes, seconds: float, limit: int, out: list, errors: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end and n < limit:
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            (out if r.status == 200 else errors).append(time.perf_counter() - t0 if r.status == 200 else r.status)
        except OSError as exc:
            errors.append(type(exc).__name__)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n += 1
    conn.close()


def post(port: int, path: str, body: bytes, content_type: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body, {"Content-Type": content_type})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def bad_inputs(record: dict) -> list[tuple[str, bytes, str]]:
    j = "application/json"
    nested = b'{"records": ' + b"[" * 500 + b"]" * 500 + b"}"
    return [
        ("/predict", b"{", j), ("/predict", b"", j), ("/predict", b'{"records": "x"}', j),
        ("/predict", b'{"records": [{}]}', j), ("/predict", json.dumps({"records": [{**record, "age": "old"}]}).encode(), j),
        ("/predict", json.dumps({"records": [{**record, "age": 400}]}).encode(), j),
        ("/predict", json.dumps({"record": record}).encode(), j), ("/predict_one", b'{"record": []}', j),
        ("/predict", json.dumps({"records": [record]}).replace('"age": 40', '"age": NaN').encode(), j),
        ("/predict", b"records=1", "multipart/form-data"), ("/predict", b"hello", "text/plain"),
        ("/predict", json.dumps({"records": [record] * 12000}).encode(), j), ("/predict", nested, j),
        ("/predict", b"\xff\xfe\x00", j),
    ]


def serve_checks(project: Project, report: Report, record: dict) -> tuple[int, int]:
    """Bounded load, mixed bad input and schemathesis against one `ml-lifecycle serve`: (requests, 5xx or errors)."""
    port = free_port()
    log = project.path.parent / "server.log"
    with open(log, "w") as out:
        proc = project.popen("serve", "--port", str(port), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:  # bounded by the deadline and the server's exit
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"error: the server did not become ready:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.5)
        body = json.dumps({"records": [record]}).encode()
        rss0 = tree_rss_mb(proc.pid)
        lat: list[float] = []
        errors: list = []
        threads = [threading.Thread(target=load, args=(port, body, SECONDS, MAX_REQUESTS, lat, errors))
                   for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=SECONDS + 120)
        rss1 = tree_rss_mb(proc.pid)
        lat.sort()
        p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan")
        report.add("bounded load", f"{len(lat) + len(errors)} requests on {CLIENTS} connections in {SECONDS:g} s, "
                   f"{len(errors)} errors, p99 {p99:.1f} ms, server RSS {rss0:.0f} -> {rss1:.0f} MB", not errors)
        statuses: dict[int, int] = {}
        bad = bad_inputs(record)
        rounds = 1 if QUICK else 20
        for _ in range(rounds):
            for path, payload, ctype in bad:
                for p, b, c in ((path, payload, ctype), ("/predict", body, "application/json")):
                    s = post(port, p, b, c)
                    statuses[s] = statuses.get(s, 0) + 1
        fives = sum(n for s, n in statuses.items() if s >= 500)
        report.add("mixed bad input", f"{2 * rounds * len(bad)} requests ({rounds * len(bad)} malformed): "
                   f"{fives} 5xx; statuses {dict(sorted(statuses.items()))}", fives == 0)
        junit = project.path.parent / "schemathesis.xml"
        st = subprocess.run([str(BIN / "st"), "run", f"http://127.0.0.1:{port}/docs.json", "--checks", "all",
                             "--max-examples", str(EXAMPLES), "--seed", "1", "--generation-database", "none",
                             "--no-color", "--continue-on-failure", "--request-timeout", "30", "--report", "junit",
                             "--report-junit-path", str(junit)], capture_output=True, text=True, timeout=900)
        suite = ET.parse(junit).getroot() if junit.exists() else None
        generated = re.search(r"(\d+) generated, (\d+) passed", st.stdout)
        failures = (int(suite.get("failures", 0)) + int(suite.get("errors", 0))) if suite is not None else -1
        report.add("schemathesis --checks all",
                   f"{generated.group(1) if generated else '?'} generated, {generated.group(2) if generated else '?'} "
                   f"passed, {failures} failures or errors (--max-examples {EXAMPLES})", st.returncode == 0 and failures == 0)
        return len(lat) + len(errors) + 2 * rounds * len(bad), len(errors) + fives
    finally:
        stop(proc)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-reliability-"))
    (work / "server").mkdir()
    server, port = auth_server(work / "server")
    report = Report()
    try:
        project = Project(work, f"http://admin:{PASSWORD}@127.0.0.1:{port}")
        os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=PASSWORD)  # this process only
        from mlflow import MlflowClient
        client = MlflowClient(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}")

        def versions() -> int:
            try:
                return len(client.search_model_versions("name='demo_model'"))
            except Exception:  # the registered model does not exist yet
                return 0

        print(f"SIGKILL at {len(KILL_AT)} point(s), then a full run ...", flush=True)
        kills = sum(killed_run(project, at, versions) for at in KILL_AT)
        final = project.cli("run")
        if final.returncode:
            raise SystemExit(f"error: the run after the kills failed:\n{final.stdout[-2000:]}{final.stderr[-2000:]}")
        running = [r.info.run_id for e in client.search_experiments()
                   for r in client.search_runs([e.experiment_id], "attributes.status = 'RUNNING'")]
        runs_dir = project.path / "runs"
        leftovers = [*runs_dir.joinpath(".cache").rglob(".tmp-*"), *runs_dir.joinpath(".active").glob("*")]
        n = versions()
        report.add(f"SIGKILL at {len(KILL_AT)} points ({', '.join(KILL_AT)})",
                   f"{kills} kills landed; {n - 1} duplicate versions, {len(running)} MLflow runs left RUNNING, "
                   f"{len(leftovers)} staging leftovers", kills == len(KILL_AT) and n == 1 and not running and not leftovers)

        import pandas as pd
        frame = pd.read_csv(project.path / "data" / "demo.csv").drop(columns="defaulted").head(1)
        record = json.loads(frame.to_json(orient="records"))[0]
        requests, failed = serve_checks(project, report, record)

        print("byte flips ...", flush=True)
        v1 = client.get_model_version("demo_model", "1")
        location = client.get_logged_model(v1.source.removeprefix("models:/")).artifact_location
        pkl = work / "server" / "artifacts" / location.removeprefix("mlflow-artifacts:/") / "python_model.pkl"
        undetected = flips = 0
        for at in FLIP_AT:
            good = flip(pkl, at)
            try:
                r = project.cli("package", "1", env={"BENTOML_HOME": str(work / f"bentoml-flip-{at}")})
            finally:
                pkl.write_bytes(good)
            flips, undetected = flips + 1, undetected + (not refused(r))
        bento_models = list((work / "bentoml" / "models" / "demo_model").glob("*/model.pkl"))
        for model in bento_models[:1]:
            good = flip(model, 200)
            try:
                r = project.cli("package", "1")
            finally:
                model.write_bytes(good)
            flips, undetected = flips + 1, undetected + (not refused(r))
        report.add("byte flips", f"{flips} flipped ({len(FLIP_AT)} in the registered pickle, {len(bento_models[:1])} "
                   f"in the Bento's model), {flips - undetected} refused in one line, {undetected} undetected",
                   undetected == 0 and flips == len(FLIP_AT) + 1)

        print("concurrent promotes ...", flush=True)
        from ml_lifecycle.evals import GateResult, Verdict
        from ml_lifecycle.registry import REGISTRATION_TAG, history, register_model
        from ml_lifecycle.settings import load_settings
        settings = load_settings(project.path / "settings.ini", env={})
        tags = {k: v for k, v in v1.tags.items() if not k.startswith("gates.") and k != REGISTRATION_TAG}
        for floor in (0.99, 0.98):  # two more candidates (judged differently, so not the same registration):
            failed_gate = Verdict((GateResult(f"roc_auc >= {floor}", "roc_auc", 0.8, floor, False),))
            register_model(settings, v1.source, v1.run_id, failed_gate, tags)  # each round, two of them race
        before, clean = len(history(settings)), 0
        for i in range(ROUNDS):
            champion = str(client.get_model_version_by_alias("demo_model", "champion").version)
            others = [v for v in ("1", "2", "3") if v != champion]
            procs = [project.popen("promote", v, "--force", "--reason", f"race {i}", "--no-deploy",
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE) for v in others]
            done = [(p.wait(timeout=300), *p.communicate(timeout=60)) for p in procs]
            project.outputs += [o + e for _, o, e in done]
            codes = [rc for rc, _, _ in done]
            refusal = done[codes.index(1)][2].strip() if sorted(codes) == [0, 1] else ""
            if refusal.startswith(f"error: champion changed from v{champion} to v"):
                clean += 1
            else:
                print(f"  round {i}: exit codes {codes}; outputs: {[(o + e).strip()[-600:] for _, o, e in done]}")
        events = len(history(settings)) - before
        report.add("concurrent promotes", f"{ROUNDS} rounds of 2: {clean} with one winner and one clear refusal; "
                   f"{events} history events", clean == ROUNDS and events == ROUNDS)

        needle = PASSWORD.encode()
        ini = project.path / "settings.ini"
        files = [p for root in (project.path, work / "server" / "artifacts", work / "bentoml") for p in root.rglob("*")
                 if p.is_file() and p != ini]
        leaks = [str(p) for p in files if needle in p.read_bytes()] + \
                [f"output {i}" for i, o in enumerate(project.outputs) if PASSWORD in o]
        report.add("secrets", f"{len(leaks)} leaks in {len(files)} files and {len(project.outputs)} command outputs"
                   + (f": {leaks[:3]}" if leaks else ""), not leaks)
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'check':<34} result")
    for check, result, ok in report.rows:
        print(f"{check:<34} {'ok  ' if ok else 'FAIL'} {result}")
    print(f"\nratio 5xx or errors per request: {failed / max(requests, 1):.4f} (goal 0; {failed} of {requests})")
    return 0 if all(ok for *_, ok in report.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
