"""Benchmark contract validation against pandera, the anchor, on the same frame and the same rules, in one run.

A 1,000,000-row x 10-column frame with range, category (allowed values), not-null and regex rules is validated
by `ml_lifecycle.contracts.validate` and by a pandera `DataFrameSchema` with the same rules (lazy, so both
collect every violation). Two cases: clean data, and the same data with 1% of the rows broken. Each timing is
the best of 3; rows per second and the ratio are printed. Goal: ours >= 2x pandera on clean data.

    .venv/bin/pip install -e '.[bench]'     # pandera, only for benchmarks
    .venv/bin/python benchmarks/contracts.py [ROWS]
    .venv/bin/python benchmarks/contracts.py --quick     # a smoke run (CI): 20,000 rows
"""
from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd

from ml_lifecycle.contracts import contract_from_dict, validate

try:
    import pandera.pandas as pa
except ImportError:
    sys.exit("error: pandera is not installed; run: .venv/bin/pip install -e '.[bench]'")

ROWS = 20_000 if "--quick" in sys.argv else int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
REGIONS, PLANS, CHANNELS = ["north", "south", "east", "west"], ["basic", "plus", "pro"], ["web", "app", "shop", "phone"]
CODE = r"[A-Z]{2}-[0-9]{4}"

CONTRACT = contract_from_dict({
    "name": "bench", "target": {"column": "label", "task": "binary"},
    "columns": {
        "age": {"dtype": "int", "nullable": False, "min": 18, "max": 100},
        "income": {"dtype": "float", "nullable": True, "min": 0, "max": 1e7},
        "balance": {"dtype": "float", "nullable": False, "min": -1e6, "max": 1e6},
        "tenure": {"dtype": "int", "nullable": False, "min": 0, "max": 600},
        "score": {"dtype": "float", "nullable": False, "min": 0, "max": 1},
        "region": {"dtype": "category", "nullable": False, "allowed": REGIONS},
        "plan": {"dtype": "category", "nullable": False, "allowed": PLANS},
        "channel": {"dtype": "category", "nullable": True, "allowed": CHANNELS},
        "code": {"dtype": "string", "nullable": False, "regex": CODE},
        "label": {"dtype": "int", "nullable": False, "allowed": [0, 1]},
    }})


def pandera_schema() -> pa.DataFrameSchema:
    rng = pa.Check.in_range
    return pa.DataFrameSchema({
        "age": pa.Column("int64", rng(18, 100), nullable=False),
        "income": pa.Column("float64", rng(0, 1e7), nullable=True),
        "balance": pa.Column("float64", rng(-1e6, 1e6), nullable=False),
        "tenure": pa.Column("int64", rng(0, 600), nullable=False),
        "score": pa.Column("float64", rng(0, 1), nullable=False),
        "region": pa.Column(str, pa.Check.isin(REGIONS), nullable=False),
        "plan": pa.Column(str, pa.Check.isin(PLANS), nullable=False),
        "channel": pa.Column(str, pa.Check.isin(CHANNELS), nullable=True),
        "code": pa.Column(str, pa.Check.str_matches(f"^{CODE}$"), nullable=False),
        "label": pa.Column("int64", pa.Check.isin([0, 1]), nullable=False),
    }, strict=True)


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    codes = np.array([f"{a}{b}-{i:04d}" for a, b, i in zip(r.choice(letters, 5000), r.choice(letters, 5000),
                                                           r.integers(0, 10000, 5000), strict=True)])
    income = r.lognormal(10, 1, n)
    income[r.random(n) < 0.05] = np.nan
    channel = r.choice(CHANNELS, n).astype(object)
    channel[r.random(n) < 0.05] = None
    return pd.DataFrame({
        "age": r.integers(18, 100, n), "income": income, "balance": r.normal(0, 1e4, n),
        "tenure": r.integers(0, 600, n), "score": r.random(n),
        "region": pd.array(r.choice(REGIONS, n), dtype="str"), "plan": pd.array(r.choice(PLANS, n), dtype="str"),
        "channel": pd.array(channel, dtype="str"), "code": pd.array(r.choice(codes, n), dtype="str"),
        "label": r.integers(0, 2, n)})


def break_rows(df: pd.DataFrame, share: float = 0.01, seed: int = 1) -> pd.DataFrame:
    """The same frame with `share` of the rows breaking one rule each (range, category, regex, null)."""
    bad = df.copy()
    r = np.random.default_rng(seed)
    idx = r.choice(len(df), int(len(df) * share), replace=False)
    for i, rows in enumerate(np.array_split(idx, 4)):
        col, value = [("age", 150), ("region", "mars"), ("code", "nope"), ("balance", np.nan)][i]
        bad.loc[rows, col] = value
    return bad


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def ours(df: pd.DataFrame):
    return validate(df, CONTRACT)


def theirs(df: pd.DataFrame, schema: pa.DataFrameSchema):
    try:
        schema.validate(df, lazy=True)
        return None
    except pa.errors.SchemaErrors as exc:
        return exc.failure_cases


def main() -> None:
    warnings.simplefilter("ignore")
    schema = pandera_schema()
    clean = make_frame(ROWS)
    broken = break_rows(clean)
    print(f"validating {ROWS:,} rows x {clean.shape[1]} columns (range, category, not-null, regex rules); best of 3")
    ratios = {}
    for name, df in (("clean", clean), ("1% bad rows", broken)):
        t_ours, report = best_of(lambda df=df: ours(df))
        t_pa, failures = best_of(lambda df=df: theirs(df, schema))
        found_ours = sorted({(v.column, v.kind) for v in report.violations})
        found_pa = 0 if failures is None else len(failures)
        ratios[name] = t_pa / t_ours
        print(f"  {name:<12} ml_lifecycle {ROWS / t_ours / 1e6:6.1f} M rows/s ({t_ours:.3f} s)   "
              f"pandera {ROWS / t_pa / 1e6:6.1f} M rows/s ({t_pa:.3f} s)   ratio {ratios[name]:.2f}x")
        print(f"               ours: {sum(v.count for v in report.violations)} bad values in {found_ours or 'none'}; "
              f"pandera: {found_pa} failure cases")
    goal = ratios["clean"] >= 2
    print(f"ratio (clean) ml_lifecycle vs pandera: {ratios['clean']:.2f}x  (goal >= 2x: {'MET' if goal else 'NOT MET'})")


if __name__ == "__main__":
    main()
