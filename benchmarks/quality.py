"""Benchmark the validate step's split and data-quality checks against a split with no checks, in one run.

On a 1,000,000-row demo table (8 features) with 20% of the rows duplicated (a survey-like table), three ways of
doing the validate step's work are timed in one run, best of 3 each:

- plain: the contract check, then scikit-learn's stratified `train_test_split` and no quality check at all;
- before: the validate step as it was before issue 19 (row-level split; leak score from quantile bins over all
  training rows; whole-row hashes for overlap and duplicates), kept below as `previous_checks`;
- ours: the contract check, `split_data` (identical rows kept on one side) and every `check_quality` check at its
  default level (the leak check's cross-validated single-feature models on a sample of `sample_rows` rows).

It prints the times and the ratios. Goal (issue 19): ours stays within about 2x "before" on 1M rows.

    .venv/bin/python benchmarks/quality.py [ROWS]
    .venv/bin/python benchmarks/quality.py --quick     # a smoke run (CI): 20,000 rows
"""
from __future__ import annotations

import sys
import time

import pandas as pd

from ml_lifecycle.contracts import infer_contract, validate
from ml_lifecycle.data import make_demo_data
from ml_lifecycle.experiment import SplitSpec
from ml_lifecycle.quality import check_quality, split_data
from ml_lifecycle.settings import QualitySettings

ROWS = 20_000 if "--quick" in sys.argv else int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000


def best_of(fn, rounds: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def anchor(df: pd.DataFrame, contract) -> tuple:
    from sklearn.model_selection import train_test_split
    validate(df, contract)
    return tuple(train_test_split(df, test_size=0.25, random_state=42, stratify=df[contract.target]))


def ours(df: pd.DataFrame, contract):
    validate(df, contract)
    train, test = split_data(df, contract)
    return check_quality(df, train, test, contract, QualitySettings(), split=SplitSpec())


def previous_checks(df: pd.DataFrame, contract) -> None:
    """The validate step's split and checks before issue 19 (commit bfabbfd), for the side-by-side timing."""
    train, test = anchor(df, contract)
    y = train[contract.target].astype(str)
    for spec in contract.features:  # leak score: majority class per quantile bin, over all training rows
        x = train[spec.name]
        if x.astype(str).equals(y):  # a copy of the target
            continue
        if pd.api.types.is_numeric_dtype(x) and x.nunique() > 32:
            bins = pd.qcut(x, 32, labels=False, duplicates="drop").astype("float64").fillna(-1)
        elif x.nunique() > 50:
            continue
        else:
            bins = pd.Series(pd.factorize(x)[0], index=x.index)
        counts = pd.crosstab(bins, y)
        _ = counts.max(axis=1).sum() / len(y)
    cols = [c for c in df.columns if c not in {contract.key, contract.time}]
    rows = lambda d: pd.util.hash_pandas_object(d[cols], index=False)  # noqa: E731
    rows(test).isin(set(rows(train)))
    test[contract.key].isin(train[contract.key])
    df.duplicated(subset=cols, keep="first")
    features = [c for c in cols if c != contract.target]
    df.groupby(features, dropna=False, sort=False)[contract.target].nunique(dropna=False)


def main() -> None:
    base = make_demo_data(int(ROWS * 0.8))
    repeats = base.sample(n=ROWS - len(base), random_state=0).assign(
        customer_id=lambda d: -1 - pd.RangeIndex(len(d)))  # same features, new keys: like repeated answers
    df = pd.concat([base, repeats], ignore_index=True)
    contract = infer_contract(df, "defaulted", name="bench")
    t_anchor, _ = best_of(lambda: anchor(df, contract))
    t_before, _ = best_of(lambda: previous_checks(df, contract))
    t_ours, report = best_of(lambda: ours(df, contract))
    print(f"{len(df):,} rows x {len(contract.features)} features, "
          f"{df.duplicated(subset=[s.name for s in contract.features]).mean():.0%} repeated rows")
    print(f"{'plain: contract check + train_test_split':52s} {t_anchor:7.2f} s")
    print(f"{'before: the validate step before issue 19':52s} {t_before:7.2f} s")
    print(f"{'ours: contract check + split_data + check_quality':52s} {t_ours:7.2f} s")
    print(f"ratio ours/before: {t_ours / t_before:.2f}x (goal <= ~2x)   ours/plain: {t_ours / t_anchor:.2f}x")
    print("findings:", [f"{f.severity} {f.check} on {f.column}" for f in report.findings])


if __name__ == "__main__":
    main()
