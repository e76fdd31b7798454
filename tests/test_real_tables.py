"""Real tables, as a new user meets them: `init` then `run` on generated look-alikes of a survey with natural
duplicate rows, a panel that repeats people, and tables with a leaked feature (issue 19).

Each table is generated here (nothing is downloaded); the assertions are the default quality policy the README
states: duplicates are a warning and never block a run, a declared group splits by group, a leak stops validate
naming the column.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import cli

pytestmark = pytest.mark.slow


def survey(rng: np.random.Generator, n: int = 1500) -> pd.DataFrame:
    """Coarse survey answers: about a fifth of the rows repeat another respondent's answers exactly."""
    age_band = rng.choice(["18-29", "30-44", "45-59", "60+"], n, p=[0.2, 0.3, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], n)
    education = rng.choice(["primary", "secondary", "tertiary"], n, p=[0.2, 0.5, 0.3])
    household = rng.integers(1, 7, n)
    trust = rng.integers(0, 11, n)  # a 0-10 scale
    logit = -0.5 + 0.35 * (trust - 5) + 0.6 * (education == "tertiary") - 0.4 * (age_band == "18-29")
    voted = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({"respondent_id": np.arange(10_000, 10_000 + n), "age_band": age_band, "region": region,
                         "education": education, "household_size": household, "trust": trust, "voted": voted})


def panel(rng: np.random.Generator, people: int = 300, waves: int = 5) -> pd.DataFrame:
    """The same people in every wave, with answers that rarely change: most rows repeat another row."""
    person = np.repeat(np.arange(people), waves)
    sex = rng.choice(["f", "m"], people)[person]
    cohort = rng.choice(["1950s", "1960s", "1970s", "1980s", "1990s"], people)[person]
    region = rng.choice(["north", "south", "east", "west"], people)[person]
    employed = np.where(rng.random(people * waves) < 0.9, rng.choice(["yes", "no"], people, p=[0.7, 0.3])[person],
                        rng.choice(["yes", "no"], people * waves))
    propensity = rng.normal(0, 1.2, people)[person]  # each person's own, unobserved: why a group split matters
    logit = propensity + 0.8 * (employed == "yes") - 0.3 * (cohort == "1990s")
    satisfied = (rng.random(people * waves) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"person_id": person + 500, "sex": sex, "cohort": cohort, "region": region,
                         "employed": employed, "satisfied": satisfied})


def init_project(tmp_path: Path, df: pd.DataFrame, target: str, experiment: dict | None = None) -> Path:
    data = tmp_path / "table.csv"
    df.to_csv(data, index=False)
    r = cli("init", tmp_path / "proj", "--data", data, "--target", target)
    assert r.returncode == 0, r.stdout + r.stderr
    proj = tmp_path / "proj"
    if experiment:
        exp = yaml.safe_load((proj / "experiment.yaml").read_text())
        for section, value in experiment.items():
            exp[section] = {**(exp.get(section) or {}), **value}
        (proj / "experiment.yaml").write_text(yaml.safe_dump(exp))
    return proj


def products(proj: Path, step: str) -> dict[str, Path]:
    run_dir = sorted((proj / "runs").glob("2*"))[-1]
    record = json.loads((run_dir / "run.json").read_text())
    return {k: Path(v) for k, v in next(s for s in record["steps"] if s["name"] == step)["products"].items()}


def feature_hashes(df: pd.DataFrame, features: list[str]) -> set[int]:
    return set(pd.util.hash_pandas_object(df[features], index=False))


def test_survey_with_natural_duplicates_trains_with_a_warning(tmp_path):
    df = survey(np.random.default_rng(7))
    features = ["age_band", "region", "education", "household_size", "trust"]
    assert 0.1 < df.duplicated(subset=features).mean() < 0.3  # like the real survey: coarse answers coincide
    proj = init_project(tmp_path, df, "voted")
    r = cli("run", "--project", proj)
    assert r.returncode == 0, r.stdout + r.stderr  # no override of any [quality] level
    assert "registered table_model version 1" in r.stdout, r.stdout
    validate = products(proj, "validate")
    quality = json.loads(validate["validation_report"].read_text())["quality"]
    by_column = {f["column"]: f for f in quality["findings"]}
    assert quality["ok"] and {f["check"] for f in quality["findings"]} == {"duplicates"}, quality
    assert by_column["*"]["severity"] == "warning" and "suggest a panel" not in by_column["*"]["message"]
    ceiling = by_column["voted"]["evidence"]  # identical answers, different votes: the noise ceiling
    assert ceiling["metric"] == "accuracy" and 0.5 < ceiling["best_on_table"] < 1, ceiling
    train, test = (pd.read_parquet(validate[k]) for k in ("train_data", "test_data"))
    assert not feature_hashes(train, features) & feature_hashes(test, features)  # by construction
    assert abs(len(test) / len(df) - 0.25) < 0.03


def test_panel_suggests_a_group_split_and_splits_by_the_declared_group(tmp_path):
    df = panel(np.random.default_rng(11))
    proj = init_project(tmp_path, df, "satisfied")
    r = cli("run", "--project", proj, "--until", "validate")
    assert r.returncode == 0, r.stdout + r.stderr
    quality = json.loads(products(proj, "validate")["validation_report"].read_text())["quality"]
    repeats = next(f for f in quality["findings"] if f["check"] == "duplicates" and f["column"] == "*")
    assert repeats["evidence"]["share"] > 0.3 and "`split.strategy: group`" in repeats["message"], repeats

    exp = proj / "experiment.yaml"  # the user follows the hint
    config = yaml.safe_load(exp.read_text())
    config["split"] = {**config["split"], "strategy": "group", "group": "person_id"}
    exp.write_text(yaml.safe_dump(config))
    r = cli("run", "--project", proj, "--until", "train")
    assert r.returncode == 0, r.stdout + r.stderr
    validate = products(proj, "validate")
    train, test = (pd.read_parquet(validate[k]) for k in ("train_data", "test_data"))
    assert not set(train["person_id"]) & set(test["person_id"]) and len(train) + len(test) == len(df)
    assert len(test) % 5 == 0  # whole people: all five waves of each on one side
    quality = json.loads(validate["validation_report"].read_text())["quality"]
    assert quality["ok"] and all("suggest a panel" not in f["message"] for f in quality["findings"])
    curve = json.loads(products(proj, "train")["learning_curve"].read_text())  # CV folds by person as well
    assert curve["rows"], curve


def _threshold_leak(rng: np.random.Generator) -> tuple[pd.DataFrame, str, str]:
    df = survey(rng)  # a count whose > 0 *is* the label, next to honest answers
    df["n_visits"] = np.where(df["voted"] == "yes", rng.poisson(2, len(df)) + 1, 0)
    return df, "voted", "n_visits"


def _monotone_leak(rng: np.random.Generator) -> tuple[pd.DataFrame, str, str]:
    n = 1200
    size = rng.normal(0, 1, n)
    price = np.exp(1 + 0.8 * size + rng.normal(0, 0.5, n))  # skewed, as prices are
    return pd.DataFrame({"size": size, "rooms": rng.integers(1, 6, n), "price": price,
                         "log_price_band": np.log(price) * 10}), "price", "log_price_band"


def _category_leak(rng: np.random.Generator) -> tuple[pd.DataFrame, str, str]:
    n = 1200
    species = rng.choice(["adelie", "gentoo", "chinstrap"], n)
    code = pd.Series(species).map({"adelie": "A1", "gentoo": "G7", "chinstrap": "C3"})
    return pd.DataFrame({"bill": rng.normal(40, 5, n) + (species == "gentoo") * 4, "island": rng.choice(["x", "y"], n),
                         "tag_prefix": code, "species": species}), "species", "tag_prefix"


@pytest.mark.parametrize("make", [_threshold_leak, _monotone_leak, _category_leak],
                         ids=["threshold", "monotone", "category"])
def test_a_leak_stops_the_run_at_validate_naming_the_column(tmp_path, make):
    df, target, leaked = make(np.random.default_rng(5))
    proj = init_project(tmp_path, df, target)
    r = cli("run", "--project", proj)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "step 'validate'" in out and f"target_leak on {leaked}:" in out, out
    assert "Traceback" not in out
    quality = json.loads(products(proj, "validate")["validation_report"].read_text())["quality"]
    assert [f["column"] for f in quality["findings"] if f["check"] == "target_leak"] == [leaked], quality
    assert not list((proj / "runs").glob("*/02_train.ipynb"))  # nothing was trained


def test_a_messy_export_is_read_as_meant_and_every_guess_is_said(tmp_path):
    """A European spreadsheet export of the survey: ';' between fields and decimal commas, '?' for an unknown
    income, a label spelled in capitals twice, and three respondents without a vote recorded. init says each
    guess; run stops at the unlabelled rows until [data] drop_unlabelled is set, then trains, printing the
    label warning."""
    rng = np.random.default_rng(5)
    df = survey(rng)
    df["income"] = [f"{v:.2f}".replace(".", ",") for v in rng.lognormal(10, 0.4, len(df))]  # as the sheet wrote it
    df.loc[df.sample(frac=0.05, random_state=1).index, "income"] = "?"
    df.loc[[10, 20], "voted"] = "YES"
    df.loc[[30, 40, 50], "voted"] = None
    data = tmp_path / "export.csv"
    df.to_csv(data, sep=";", decimal=",", index=False)
    r = cli("init", tmp_path / "proj", "--data", data, "--target", "voted")
    proj = tmp_path / "proj"
    assert r.returncode == 0, r.stdout + r.stderr
    said = [line for line in r.stdout.splitlines() if line.startswith("warning: ")]
    assert said[0].startswith("warning: export.csv: fields separated by ';', decimal mark ','"), r.stdout
    assert any(line.startswith("warning: column 'income': 75 of 1500 values are not numbers ('?' x75") for line in said)
    assert any("target 'voted': 3 of 1500 rows have no value (rows 30, 40, 50)" in line for line in said), said
    assert any("labels 'YES' (2 rows) and 'yes'" in line for line in said), said
    contract = yaml.safe_load(next((proj / "contracts").glob("*.yaml")).read_text())
    assert contract["columns"]["income"]["dtype"] == "float" and contract["columns"]["income"]["na_values"] == ["?"]
    assert contract["columns"]["trust"]["severity"] == {"max": "warning", "min": "warning"}

    r = cli("run", "--project", proj)  # unlabelled rows break the drafted contract: a clear stop at validate
    assert r.returncode == 1 and "voted" in r.stderr and "Traceback" not in r.stderr, r.stdout + r.stderr
    r = cli("run", "--project", proj, env={"ML_LIFECYCLE_DATA__DROP_UNLABELLED": "true"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "registered export_model version 1" in r.stdout, r.stdout
    assert "warning labels on voted: labels 'YES' (2 rows) and 'yes'" in r.stdout, r.stdout
    validate = products(proj, "validate")
    train = pd.read_parquet(validate["train_data"])
    assert train["income"].dtype.kind == "f" and train["income"].isna().any() and train["voted"].notna().all()
    notebook = next(p for p in sorted((proj / "runs").glob("2*"))[-1].glob("*validate.ipynb"))
    assert "dropped 3 of 1500 rows without a target value" in notebook.read_text()
