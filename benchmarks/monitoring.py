"""Benchmark: drift over a 1,000,000-row reference and a 1,000,000-row current window of 20 features (12
numeric, 8 categorical; 5 of them shifted on purpose), ours against Evidently's DataDriftPreset, in one run.

Ours is what monitoring does: build the reference profile from the reference rows (quantile bins, category
shares, missing rates, a 5,000-value sample per numeric feature) and run every registered statistic (PSI, KS,
chi-square, missing rate, new categories) on the current rows. Evidently gets the same two frames. Evidently
0.7 cannot import with pandas 3 (this project's pandas), so it runs in its own virtual environment,
`benchmarks/.venv-evidently` (made on first use: evidently 0.7.23 with pandas 2), in a subprocess that reads the
same parquet files; only its `Report.run` is timed, as only our profile and drift calls are. Evidently's
telemetry is switched off.

    .venv/bin/python benchmarks/monitoring.py [--rows 1000000] [--repeat 2]
    .venv/bin/python benchmarks/monitoring.py --quick    # a smoke run (CI): 20,000 rows, once
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

import numpy as np
import pandas as pd

from ml_lifecycle.contracts import infer_contract
from ml_lifecycle.monitoring import build_profile, drift_table
from ml_lifecycle.settings import MonitoringSettings

HERE = Path(__file__).resolve().parent
EV_VENV = HERE / ".venv-evidently"
SHIFTED = {"num_00", "num_01", "num_02", "cat_00", "cat_01"}

EV_SCRIPT = r'''
import json, os, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
t0 = time.perf_counter()
result = Report([DataDriftPreset()]).run(cur, ref)
seconds = time.perf_counter() - t0
drifted, methods = [], {}
for m in result.dict()["metrics"]:
    cfg = m["config"]
    if cfg.get("type", "").endswith("ValueDrift"):
        method, value, threshold = cfg["method"], m["value"], cfg["threshold"]
        methods[cfg["column"]] = method
        p_value = "p_value" in method.lower() or "test" in method.lower()
        if (value < threshold) if p_value else (value >= threshold):
            drifted.append(cfg["column"])
print(json.dumps({"seconds": seconds, "drifted": sorted(drifted), "methods": sorted(set(methods.values()))}))
'''


def make(n: int, seed: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for i in range(12):
        x = rng.normal(10 * i, 1 + i % 3, n) if i % 2 == 0 else rng.lognormal(1 + i / 10, 0.5, n)
        if shifted and i == 0:
            x = x + 0.5 * (1 + i % 3)  # mean moved by half a standard deviation
        if shifted and i == 1:
            x = x * 1.6  # scale grows
        if shifted and i == 2:
            x = x + 0.4 * (1 + i % 3)
        x[rng.random(n) < 0.02] = np.nan
        cols[f"num_{i:02d}"] = x
    for j in range(8):
        k = 3 + j % 5
        p = np.linspace(1, 2, k)
        p = p / p.sum()
        if shifted and j == 0:
            p = p[::-1]  # the shares swap ends
        values = rng.choice([f"c{v}" for v in range(k)], n, p=p).astype(object)
        if shifted and j == 1:
            values[rng.random(n) < 0.1] = "brand_new"  # a category never seen in the reference
        cols[f"cat_{j:02d}"] = values
    return pd.DataFrame(cols)


def ours(ref: pd.DataFrame, cur: pd.DataFrame, contract) -> tuple[float, set[str]]:
    t0 = time.perf_counter()
    profile = build_profile(ref, contract, [], seed=0)
    table = drift_table(profile, cur, None, MonitoringSettings())
    seconds = time.perf_counter() - t0
    return seconds, set(table[table["alert"]]["feature"])


def evidently_python() -> Path:
    py = EV_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {EV_VENV} (evidently 0.7.23 with pandas 2; once) ...", flush=True)
        subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(EV_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "evidently==0.7.23",
                        "pandas>=2.2,<3", "pyarrow"], check=True)
    return py


def evidently(ref_path: Path, cur_path: Path) -> dict:
    env = {**os.environ, "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"}
    out = subprocess.run([str(evidently_python()), "-c", EV_SCRIPT, str(ref_path), str(cur_path)],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        sys.exit(f"evidently failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 20,000 rows, once")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.repeat = 20_000, 1
    ref, cur = make(args.rows, 1, False), make(args.rows, 2, True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    ref.to_parquet(tmp / "ref.parquet")
    cur.to_parquet(tmp / "cur.parquet")
    sample = ref.head(20_000).assign(y=np.arange(20_000) % 2)
    contract = infer_contract(sample, "y", name="bench")
    print(f"reference {len(ref):,} rows, current {len(cur):,} rows, {ref.shape[1]} features; shifted: {sorted(SHIFTED)}")
    ours_t, ev_t, ours_alerts, ev = [], [], set(), {}
    for i in range(args.repeat):
        seconds, ours_alerts = ours(ref, cur, contract)
        ours_t.append(seconds)
        ev = evidently(tmp / "ref.parquet", tmp / "cur.parquet")
        ev_t.append(ev["seconds"])
        print(f"  round {i + 1}: ours {seconds:.2f} s, Evidently {ev['seconds']:.2f} s", flush=True)
    o, e = min(ours_t), min(ev_t)
    print(f"ours alerts:      {sorted(ours_alerts)}")
    print(f"Evidently drifts: {ev['drifted']} (methods: {ev['methods']})")
    print(f"same alerts: {ours_alerts == set(ev['drifted'])}; both equal the injected shifts: "
          f"{ours_alerts == SHIFTED and set(ev['drifted']) == SHIFTED}")
    print(f"best of {args.repeat}: ours {o:.2f} s, Evidently {e:.2f} s -> ours is {e / o:.1f}x faster (goal >= 5x)")
    print(f"ratio Evidently / ours: {e / o:.2f}x")


if __name__ == "__main__":
    main()
