"""Benchmark: does the pipeline's cost track the model's? `ml-lifecycle run --force` on demo data of N rows
against a plain Python script doing the same fit, predict and scikit-learn metrics on the same split, in one run.

For each size, a fresh copy of the demo project gets `ml-lifecycle demo-data --rows N` (not timed). Then:

- ours: `ml-lifecycle run --force` (validate, train, evaluate, register, card, package), as a new process;
- plain: a new `python` process that imports pandas and scikit-learn, reads the same CSV, takes the same test
  rows (the run's test split, by key), fits the same features-plus-logistic-regression pipeline by hand
  (median impute + standardize, one-hot; `class_weight="balanced"`, the experiment's seed) and computes
  scikit-learn's metrics on the test rows. Its ROC AUC must equal the run's: the same fit on the same split.

It prints both wall times and their ratio per size, each step's seconds and the slowest cells, and the peak
memory of the step kernels: the processes that grow. `/usr/bin/time` on the CLI misses them, so every process
under the CLI is sampled and its high-water mark (`VmHWM` in /proc) kept. Goal (issue 16): at most 2.5x at 1M.

    .venv/bin/python benchmarks/scale.py                      # 60k, 600k and 2M rows
    .venv/bin/python benchmarks/scale.py --rows 1000000       # one size
    .venv/bin/python benchmarks/scale.py --quick              # a smoke run (CI): 6,000 rows
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import copy_demo_project  # noqa: E402

BIN = Path(sys.executable).parent
CLI = str(BIN / "ml-lifecycle")
GOAL = 2.5

PLAIN = r'''
import sys, time
t0 = time.perf_counter()
import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

data, test_ids, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
df = pd.read_csv(data)
is_test = df["customer_id"].isin(np.load(test_ids))
train, test = df[~is_test], df[is_test]
numeric = ["age", "income", "debt_ratio", "credit_lines", "late_payments", "tenure_months"]
categorical = ["region", "employment"]
features = ColumnTransformer([
    ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
    ("categorical", Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                              ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]), categorical)])
model = Pipeline([("features", features),
                  ("model", LogisticRegression(max_iter=2000, random_state=seed, class_weight="balanced"))])
model.fit(train[numeric + categorical], train["defaulted"])
scores = model.predict_proba(test[numeric + categorical])[:, 1]
y, pred = test["defaulted"].to_numpy(), (scores >= 0.5).astype(int)
m = {"accuracy": metrics.accuracy_score(y, pred), "balanced_accuracy": metrics.balanced_accuracy_score(y, pred),
     "log_loss": metrics.log_loss(y, scores), "roc_auc": metrics.roc_auc_score(y, scores),
     "average_precision": metrics.average_precision_score(y, scores), "f1": metrics.f1_score(y, pred),
     "precision": metrics.precision_score(y, pred), "recall": metrics.recall_score(y, pred),
     "brier": metrics.brier_score_loss(y, scores)}
print(f"PLAIN rows={len(df)} train={len(train)} test={len(test)} roc_auc={m['roc_auc']:.10f} "
      f"seconds={time.perf_counter() - t0:.3f}")
'''


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def descendants(root: int) -> list[int]:
    """`root` and every process below it (from /proc's parent ids)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


class TreeMemory:
    """Samples a process tree every `interval` s: each process's high-water RSS (VmHWM) and the tree's total RSS."""

    def __init__(self, root: int, interval: float = 0.1):
        self.root, self.interval = root, interval
        self.hwm: dict[int, tuple[int, str]] = {}  # pid -> (peak kB, what it is)
        self.total_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in descendants(self.root):
                total += status_kb(pid, "VmRSS")
                hwm = status_kb(pid, "VmHWM")
                if hwm and hwm > self.hwm.get(pid, (0, ""))[0]:
                    try:
                        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
                    except (FileNotFoundError, ProcessLookupError):
                        cmd = "?"
                    self.hwm[pid] = (hwm, cmd)
            self.total_peak = max(self.total_peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def kernels(self) -> list[int]:
        """High-water marks (kB) of the kernel processes, largest first."""
        return sorted((kb for pid, (kb, cmd) in self.hwm.items() if pid != self.root and "kernel" in cmd),
                      reverse=True)


def ours(project: Path) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([CLI, "run", "--force"], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    with TreeMemory(proc.pid) as mem:
        out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"ml-lifecycle run --force failed:\n{out[-4000:]}")
    record = json.loads((sorted((project / "runs").glob("2*"))[-1] / "run.json").read_text())
    steps = {s["name"]: s["seconds"] for s in record["steps"]}
    cells = []
    for s in record["steps"]:
        for i, c in enumerate(nbformat.read(s["notebook"], as_version=4).cells):
            took = c.metadata.get("papermill", {}).get("duration") or 0
            if c.cell_type == "code":
                cells.append((took, s["name"], i, c.source.strip().splitlines()[0][:70] if c.source.strip() else ""))
    evaluation = json.loads(Path(record["steps"][2]["products"]["evaluation"]).read_text())
    test = Path(record["steps"][0]["products"]["test_data"])
    kernels = mem.kernels()
    return {"wall": wall, "steps": steps, "cells": sorted(cells, reverse=True), "test": test,
            "roc_auc": evaluation["metrics"]["roc_auc"], "kernel_peak_mb": (kernels[0] if kernels else 0) / 1024,
            "kernels": len(kernels), "cli_peak_mb": mem.hwm.get(proc.pid, (0, ""))[0] / 1024,
            "tree_peak_mb": mem.total_peak / 1024}


def plain(project: Path, test_data: Path, seed: int) -> dict:
    import numpy as np
    import pandas as pd
    ids = project / "test_ids.npy"
    np.save(ids, pd.read_parquet(test_data, columns=["customer_id"])["customer_id"].to_numpy())
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", PLAIN, str(project / "data" / "demo.csv"), str(ids), str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeMemory(proc.pid) as mem:
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"plain script failed:\n{err[-4000:]}")
    line = next(x for x in out.splitlines() if x.startswith("PLAIN "))
    fields = dict(kv.split("=") for kv in line.split()[1:])
    return {"wall": wall, "roc_auc": float(fields["roc_auc"]), "test": int(fields["test"]),
            "peak_mb": mem.hwm.get(proc.pid, (0, ""))[0] / 1024}


def one_size(rows: int, tmp: Path, show_cells: int) -> float:
    project = copy_demo_project(tmp / f"demo-{rows}")
    subprocess.run([CLI, "demo-data", "--rows", str(rows), "data/demo.csv"], cwd=project, check=True,
                   capture_output=True)
    print(f"\n== {rows:,} rows", flush=True)
    e = ours(project)
    p = plain(project, e["test"], seed=42)
    same = abs(e["roc_auc"] - p["roc_auc"]) < 1e-6
    print("steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in e["steps"].items()))
    for took, step, i, first in e["cells"][:show_cells]:
        print(f"  cell {step}[{i}] {took:6.2f}s  {first}")
    print(f"memory: largest step kernel {e['kernel_peak_mb']:.0f} MB peak (of {e['kernels']} kernels), "
          f"CLI process {e['cli_peak_mb']:.0f} MB, whole tree {e['tree_peak_mb']:.0f} MB at once; "
          f"plain script {p['peak_mb']:.0f} MB")
    print(f"same fit: run's test roc_auc {e['roc_auc']:.6f}, plain {p['roc_auc']:.6f} on {p['test']:,} test rows"
          f" ({'equal' if same else 'DIFFERENT'})")
    ratio = e["wall"] / p["wall"]
    print(f"ratio at {rows:,} rows: ml-lifecycle run --force {e['wall']:.1f}s / plain script {p['wall']:.1f}s "
          f"= {ratio:.2f}x (goal <= {GOAL}x at 1M)", flush=True)
    if not same:
        sys.exit("error: the plain script's fit differs from the run's (ROC AUC not equal)")
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[60_000, 600_000, 2_000_000])
    ap.add_argument("--cells", type=int, default=6, help="show this many of the slowest cells per size")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 6,000 rows")
    args = ap.parse_args()
    rows = [6_000] if args.quick else args.rows
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        ratios = {n: one_size(n, Path(tmp), args.cells) for n in rows}
    print("\n" + "; ".join(f"{n:,} rows {r:.2f}x" for n, r in ratios.items()))


if __name__ == "__main__":
    main()
