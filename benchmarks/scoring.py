"""Benchmark batch scoring (`ml_lifecycle.scoring.score_file`, what `ml-lifecycle score` runs in its notebook) against
the anchor, MLflow's pyfunc `predict` on the whole frame, in one run.

Setup (not timed): the demo project in a temporary folder, `ml-lifecycle run --until register` (version 1), and a
parquet file of ROWS demo rows (`make_demo_data`, written 1,000,000 rows at a time in row groups of 250,000 so
that generating it needs no more memory than scoring it).

Each side runs in its own Python process, sampled every 20 ms for the resident memory of it and its children
(psutil), so peak RSS is that side's alone:
- ours, one process: `score_file(..., dask=False)`: read in chunks, check every row against the contract,
  score, write parquet (scores, provenance, rejects file);
- ours on Dask: `score_file(..., dask=True)` on a LocalCluster of 2 worker processes (the cluster's start-up is
  inside the time), row groups spread over the workers;
- anchor: `pd.read_parquet` of the file and `mlflow.pyfunc.load_model(...).predict` on the whole frame (the
  pyfunc checks the contract's schema; nothing is written).
Rows/s is rows over the timed part (model loading and imports are left out on every side).

    .venv/bin/python benchmarks/scoring.py [--rows 10000000]
    .venv/bin/python benchmarks/scoring.py --quick    # a smoke run (CI): 5,000 rows
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import copy_demo_project  # noqa: E402

BIN = Path(sys.executable).parent

OURS = r'''
import json, sys, time
from dataclasses import replace
import ml_lifecycle as ml
from ml_lifecycle.scoring import load_scoring_model, score_file
if __name__ == "__main__":
    s = ml.load_settings("settings.ini")
    sm = load_scoring_model(s, "1")
    dask = sys.argv[2] == "dask"
    r = score_file(sm, sys.argv[1], sys.argv[3], dask=dask, ps=replace(s.pipeline, dask_workers=2))
    print(json.dumps({"rows": r.rows, "scored": r.scored, "seconds": r.seconds, "workers": r.dask_workers}))
'''

ANCHOR = r'''
import json, sys, time
import pandas as pd
import ml_lifecycle as ml
from ml_lifecycle.tracking import load_pyfunc
s = ml.load_settings("settings.ini")
model = load_pyfunc("models:/demo_model/1", s)  # mlflow.pyfunc.load_model of the logged model
features = [c.name for c in ml.load_contract(s.path(s.data.contract)).features]
t0 = time.perf_counter()
df = pd.read_parquet(sys.argv[1], columns=features)
out = model.predict(df)
print(json.dumps({"rows": len(df), "scored": len(out), "seconds": time.perf_counter() - t0, "workers": 0}))
'''


def measure(code: str, args: list[str], cwd: Path, env: dict[str, str]) -> dict:
    """Run `code` in a fresh Python; its JSON line, and the peak RSS (MB) of it and its children."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ps, peak, deadline = psutil.Process(proc.pid), 0, time.monotonic() + 3600
    while proc.poll() is None and time.monotonic() < deadline:  # bounded: an hour at most
        try:
            tree = [ps, *ps.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}):\n{out[-2000:]}\n{err[-3000:]}")
    found = json.loads(out.strip().splitlines()[-1])
    return {**found, "peak_mb": peak / 2**20, "rows_per_s": found["rows"] / found["seconds"]}


def make_data(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ml_lifecycle.data import make_demo_data
    writer, done, seed = None, 0, 0
    while done < rows:
        n = min(1_000_000, rows - done)
        table = pa.Table.from_pandas(make_demo_data(n, seed).drop(columns="defaulted"), preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=250_000)
        done, seed = done + n, seed + 1
    writer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 5,000 rows")
    a = ap.parse_args()
    rows = 5_000 if a.quick else a.rows
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_LIFECYCLE_")}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", BENTOML_DO_NOT_TRACK="True")
    project = copy_demo_project(Path(tempfile.mkdtemp(prefix="bench-scoring-")) / "demo")
    print(f"setting up: ml-lifecycle run --until register in {project} (not timed)", flush=True)
    r = subprocess.run([str(BIN / "ml-lifecycle"), "run", "--until", "register"], cwd=project, env=env,
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"setup failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    data = project / "big.parquet"
    t0 = time.perf_counter()
    make_data(data, rows)
    print(f"{rows:,} rows in {data} ({data.stat().st_size / 2**20:.0f} MB, {time.perf_counter() - t0:.0f} s to make)",
          flush=True)
    results = {}
    for name, code, args in (("ours, one process", OURS, [str(data), "local", str(project / "one.parquet")]),
                             ("ours, Dask 2 workers", OURS, [str(data), "dask", str(project / "dask.parquet")]),
                             ("anchor pyfunc predict", ANCHOR, [str(data)])):
        results[name] = m = measure(code, args, project, env)
        assert m["rows"] == rows, m
        print(f"{name:<24} {m['rows_per_s']:>12,.0f} rows/s  {m['seconds']:8.2f} s  peak RSS {m['peak_mb']:8.0f} MB",
              flush=True)
    one, dask, anchor = results.values()
    print(f"ratio one process / anchor rows/s: {one['rows_per_s'] / anchor['rows_per_s']:.2f}x")
    print(f"ratio Dask 2 workers / one process rows/s: {dask['rows_per_s'] / one['rows_per_s']:.2f}x "
          "(the cluster's start-up included)")
    print(f"ratio anchor / one process peak RSS: {anchor['peak_mb'] / one['peak_mb']:.2f}x "
          f"({anchor['peak_mb']:.0f} MB vs {one['peak_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
