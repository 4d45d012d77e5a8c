"""What a registered model is logged with to be reproduced and explained: versions, commit, importance.

Private to :mod:`workbench.training.register`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a model's behaviour."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("scikit-learn", "optuna", "mlflow", "pandas", "numpy", "skops", "mlops-workbench"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def model_requirements() -> list[str]:
    """Pinned requirements of a logged Pipeline (its preprocessing lives in the workbench package)."""
    versions = package_versions()
    return [f"{name}=={versions[name]}" for name in ("mlflow", "scikit-learn", "skops", "pandas", "numpy")
            if name in versions]


def git_commit() -> str | None:
    """The git commit of the working folder's repository, when there is one."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


def feature_importance(pipeline: Any, X: pd.DataFrame, y: pd.Series, *, seed: int, scoring: str | None) -> Any:
    """Feature importance as a frame (feature, importance, method): native when the model has it."""
    import numpy as np
    import pandas as pd

    model = pipeline.named_steps["model"]
    native = getattr(model, "feature_importances_", None)
    if native is None and getattr(model, "coef_", None) is not None:
        coef = np.asarray(model.coef_)
        native = np.abs(coef).mean(axis=0) if coef.ndim == 2 else np.abs(coef)
    if native is not None:
        try:
            names = list(pipeline.named_steps["preprocess"].get_feature_names_out())
        except Exception:  # a transformer without feature names: number the columns
            names = [f"x{i}" for i in range(len(native))]
        if len(names) == len(native):
            frame = pd.DataFrame({"feature": names, "importance": np.asarray(native, dtype=float)})
            frame["method"] = "native"
            return frame.sort_values("importance", ascending=False, ignore_index=True)
    from sklearn.inspection import permutation_importance

    rows = X.iloc[:1000]
    result = permutation_importance(
        pipeline, rows, y.iloc[:1000], n_repeats=5, random_state=seed, scoring=scoring, n_jobs=1
    )
    frame = pd.DataFrame({"feature": list(X.columns), "importance": result.importances_mean})
    frame["method"] = "permutation"
    return frame.sort_values("importance", ascending=False, ignore_index=True)


def skops_trusted_types(pipeline: Any) -> list[str]:
    """The non-default types skops must trust to load ``pipeline`` (so the saved model loads)."""
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))
