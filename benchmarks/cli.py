"""Benchmark: how long the everyday CLI commands take, beside `python -c "import mlflow"` as the anchor.

A copy of the demo project is run once (not timed), so the registry holds a champion with history and the
prediction log holds a handful of requests (too few for `monitor` to judge). Then, each as a fresh process,
best of `--repeat` warm runs:

- `ml-lifecycle --help`;
- `ml-lifecycle history`;
- `ml-lifecycle contract check data/demo.csv`;
- `ml-lifecycle monitor` (too few rows: it says so without running the monitor notebook);
- the anchor: `python -c "import mlflow"` (what any command pays that touches MLflow at all).

It prints each wall time and its ratio to the anchor. Goal (issue 13): each command under 2 s here, once warm.

    .venv/bin/python benchmarks/cli.py [--repeat N] [--project DIR]
    .venv/bin/python benchmarks/cli.py --quick     # a smoke run (CI): one timed run of each
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import copy_demo_project  # noqa: E402

BIN = Path(sys.executable).parent
CLI = str(BIN / "ml-lifecycle")


def timed(cmd: list[str], cwd: Path, env: dict[str, str], repeat: int, ok: tuple[int, ...] = (0,)) -> float:
    """Best wall time of `repeat` runs of `cmd` (after one warm-up run); fails loudly on an unexpected exit code."""
    best = float("inf")
    for i in range(repeat + 1):
        start = time.perf_counter()
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        took = time.perf_counter() - start
        if r.returncode not in ok:
            sys.exit(f"error: {' '.join(cmd)} exited {r.returncode}: {(r.stderr or r.stdout).strip()[-500:]}")
        if i:  # the first run warms the file cache and the bytecode
            best = min(best, took)
    return best


def few_requests(project: Path, model_version: str) -> None:
    """A prediction log of 5 served requests: fewer rows than [monitoring] min_rows."""
    from ml_lifecycle.predlog import LOG_FIELDS
    log = project / "logs" / "predictions.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    record = {"age": 40, "income": 40000.0, "debt_ratio": 0.3, "credit_lines": 5, "late_payments": 0,
              "tenure_months": 30, "region": "north", "employment": "salaried", "customer_id": 1}
    lines = []
    for _ in range(5):
        entry = dict.fromkeys(LOG_FIELDS)
        entry.update(ts=datetime.now(UTC).isoformat(), endpoint="predict_one", status=200,
                     model_version=model_version, latency_ms=2.0, inputs=[record], outputs=[{"label": 0}],
                     route="champion", nonfinite=False)
        lines.append(json.dumps(entry))
    log.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--project", type=Path, help="an existing demo project that has run (default: a fresh copy)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: --repeat 1")
    args = ap.parse_args()
    if args.quick:
        args.repeat = 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_LIFECYCLE_")}
    env.update(BENTOML_HOME=str(Path(tempfile.mkdtemp(prefix="bench-cli-bentoml-"))), BENTOML_DO_NOT_TRACK="True")
    project = args.project
    if project is None:
        project = copy_demo_project(Path(tempfile.mkdtemp(prefix="bench-cli-")) / "demo")
        print(f"setting up: ml-lifecycle run in {project} (not timed)", flush=True)
        r = subprocess.run([CLI, "run"], cwd=project, env=env, capture_output=True, text=True, timeout=1200)
        if r.returncode:
            sys.exit(f"error: the demo run failed: {(r.stderr or r.stdout).strip()[-500:]}")
    few_requests(project, "1")
    rows = [
        ("python -c 'import mlflow' (anchor)", [sys.executable, "-c", "import mlflow"], (0,)),
        ("ml-lifecycle --help", [CLI, "--help"], (0,)),
        ("ml-lifecycle history", [CLI, "history"], (0,)),
        ("ml-lifecycle contract check data/demo.csv", [CLI, "contract", "check", "data/demo.csv"], (0,)),
        ("ml-lifecycle monitor (too few rows)", [CLI, "monitor"], (0,)),
    ]
    times = {name: timed(cmd, project, env, args.repeat, ok) for name, cmd, ok in rows}
    anchor = times[rows[0][0]]
    print(f"\n{'command':46s} {'seconds':>8s} {'vs anchor':>10s}  goal < 2 s")
    for name, took in times.items():
        verdict = "" if name == rows[0][0] else ("ok" if took < 2 else "SLOW")
        print(f"{name:46s} {took:8.2f} {took / anchor:9.2f}x  {verdict}")
    slowest = max((n for n in times if n != rows[0][0]), key=times.get)
    print(f"ratio slowest command / anchor: {times[slowest] / anchor:.2f}x ({slowest}, {times[slowest]:.2f} s)")


if __name__ == "__main__":
    main()
