"""ml_lifecycle: notebook-to-production lifecycle for tabular ML.

The public API is re-exported here and loaded lazily, so `import ml_lifecycle` is cheap and
`ml-lifecycle --help` does not pay for MLflow or scikit-learn. The modules themselves are exported
from the numbered notebooks in `nbs/`; this file is the only hand-written one.
"""

import os as _os

__version__ = "0.1.0"

# Nothing leaves the machine: MLflow's and BentoML's usage telemetry stay off unless the user turns them on.
# (MLflow's telemetry thread also sets and unsets an environment variable while other threads copy the
# environment to start kernels, which failed a run with a KeyError.)
_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
_os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

# The public surface: the facades (`project()` for the lifecycle, `step()` for a pipeline step's notebook), the
# typed results and step products, a handful of building blocks, and the errors users catch (the whole tree is
# `ml_lifecycle.errors`). Everything else stays importable from its module (`from ml_lifecycle.promotion import
# promote`), documented in its notebook.
_EXPORTS = {
    "errors": ["LifecycleError", "SettingsError", "DataError", "ContractViolation", "ArtifactError", "TrainingError",
               "GateFailed", "RegistryError", "ModelNotFound", "PipelineError", "StepFailed"],
    "settings": ["Settings", "load_settings"],
    "data": ["read_table", "write_table", "make_demo_data"],
    "contracts": ["Contract", "load_contract", "infer_contract", "validate", "fingerprint"],
    "experiment": ["Experiment"],
    "quality": ["split_data", "check_quality"],
    "training": ["train_model"],
    "evals": ["Verdict"],
    "tracking": ["ModelInfo"],
    "registry": ["Registered", "register_model"],
    "promotion": ["Evaluation", "evaluate_model"],
    "packaging": ["Deployment"],
    "steps": ["Step", "step"],
}
# `project` is both a module and the function users call (`ml.project()`). Importing the (light) module here,
# before anything else can, keeps the name bound to the function: Python sets a submodule as an attribute of
# its package only when it first loads it.
from ml_lifecycle.project import Project, project  # noqa: E402

_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_MODULES = ("display", "errors", "predlog", "settings", "files", "data", "contracts", "schemas", "experiment",
            "quality", "features", "training", "mlp", "evals", "tracking", "registry", "promotion", "search", "reports",
            "monitoring", "pipeline", "kernels", "runner", "runs", "sweep", "scaffold", "serving", "packaging", "steps",
            "magics", "cli")

__all__ = [
    "ArtifactError",
    "Contract",
    "ContractViolation",
    "DataError",
    "Deployment",
    "Evaluation",
    "Experiment",
    "GateFailed",
    "LifecycleError",
    "ModelInfo",
    "ModelNotFound",
    "PipelineError",
    "Project",
    "Registered",
    "RegistryError",
    "Settings",
    "SettingsError",
    "Step",
    "StepFailed",
    "TrainingError",
    "Verdict",
    "check_quality",
    "evaluate_model",
    "fingerprint",
    "infer_contract",
    "load_contract",
    "load_settings",
    "make_demo_data",
    "project",
    "read_table",
    "register_model",
    "split_data",
    "step",
    "train_model",
    "validate",
    "write_table",
]


def load_ipython_extension(ipython) -> None:
    """`%load_ext ml_lifecycle`: the magics `%ml_project`, `%ml_run` and `%ml_step` (see `ml_lifecycle.magics`)."""
    from ml_lifecycle.magics import load_ipython_extension as load
    load(ipython)


def __getattr__(name: str):
    import importlib
    if name in _WHERE:
        return getattr(importlib.import_module(f"ml_lifecycle.{_WHERE[name]}"), name)
    if name in _MODULES:
        return importlib.import_module(f"ml_lifecycle.{name}")
    raise AttributeError(f"module 'ml_lifecycle' has no attribute {name!r}")


def __dir__():
    return sorted([*__all__, *_MODULES, "__version__"])
