"""The public surface is small, pinned, cheap to import, and every module comes from a notebook."""
import subprocess
import sys
from pathlib import Path

import ml_lifecycle

PKG = Path(ml_lifecycle.__file__).parent
NBS = PKG.parent / "nbs"

PUBLIC = [
    # issue 13: a small public surface. The facades: the lifecycle (`project`) and a pipeline step (`step`)
    "Project", "project", "Step", "step",
    # typed results and step products
    "Settings", "Contract", "Experiment", "Verdict", "Evaluation", "ModelInfo", "Registered", "Deployment",
    # building blocks a step notebook or a user's own notebook calls
    "load_settings", "load_contract", "read_table", "write_table", "make_demo_data", "infer_contract", "validate",
    "fingerprint", "split_data", "check_quality", "train_model", "evaluate_model", "register_model",
    # the errors users catch (the whole tree is ml_lifecycle.errors)
    "LifecycleError", "SettingsError", "DataError", "ContractViolation", "ArtifactError", "TrainingError",
    "GateFailed", "RegistryError", "ModelNotFound", "PipelineError", "StepFailed",
]


def test_public_names_are_pinned():
    assert ml_lifecycle.__all__ == sorted(PUBLIC)


def test_project_is_the_function_even_after_its_module_is_imported():
    code = ("import ml_lifecycle as ml, ml_lifecycle.project, ml_lifecycle.cli; "
            "print(callable(ml.project), ml.project.__module__, ml.Project.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "ml_lifecycle.project", "Project"]


def test_every_public_name_resolves_to_its_module():
    for name in PUBLIC:
        obj = getattr(ml_lifecycle, name)
        assert obj.__module__.startswith("ml_lifecycle."), name


def test_import_is_cheap():
    code = "import sys, ml_lifecycle; print(sorted(m for m in ('mlflow', 'sklearn', 'papermill', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_module_is_exported_from_a_numbered_notebook():
    notebooks = {p.stem.split("_", 1)[1]: p for p in NBS.glob("[0-9][0-9]_*.ipynb")}
    modules = [p for p in PKG.glob("*.py") if p.name not in ("__init__.py", "_modidx.py")]
    assert modules
    for mod in modules:
        assert mod.stem in notebooks, f"{mod.name} has no notebook in nbs/"
        assert f"File to edit: ../nbs/{notebooks[mod.stem].name}" in mod.read_text(), mod.name


def test_the_repo_bentofile_is_the_one_init_writes():
    from ml_lifecycle.scaffold import BENTOFILE_TEMPLATE
    assert (PKG.parent / "bentofile.yaml").read_text() == BENTOFILE_TEMPLATE


def test_the_repo_settings_are_the_ones_init_writes_for_the_demo():
    """Every default and its documentation exist once, in the settings dataclasses; the demo's file is rendered."""
    from ml_lifecycle.scaffold import DEMO_GATES, render_settings
    expected = render_settings("demo", "data/demo.csv", "contracts/credit_default.yaml", "binary", gates=DEMO_GATES)
    assert (PKG.parent / "settings.ini").read_text() == expected


def test_step_notebooks_use_only_public_names():
    """Pipeline notebooks orchestrate the public API: `ml.<public name>` and nothing imported from a module."""
    import re

    import nbformat
    for nb_path in sorted((PKG.parent / "pipelines").glob("*.ipynb")):
        code = "\n".join(c.source for c in nbformat.read(nb_path, as_version=4).cells if c.cell_type == "code")
        assert "import ml_lifecycle as ml" in code, nb_path.name
        imports = re.findall(r"^\s*(?:from ml_lifecycle\S* import .*|import ml_lifecycle\.\S+.*)$", code, re.M)
        assert not imports, (nb_path.name, imports)
        used = set(re.findall(r"\bml\.([A-Za-z_]\w*)", code))
        assert used <= set(ml_lifecycle.__all__), (nb_path.name, sorted(used - set(ml_lifecycle.__all__)))
