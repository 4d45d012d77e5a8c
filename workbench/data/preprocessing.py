"""The one preprocessing builder every model uses (baselines, tuning trials, retrains).

Numeric columns are imputed with the median and optionally scaled; categorical, boolean and
text columns are turned into strings (missing becomes its own category) and one-hot
encoded with unknown categories ignored and rare ones grouped, so a category first seen in
production never breaks a prediction. Date/time columns are left out: a raw timestamp is
not a feature a model can generalise from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.compose import ColumnTransformer

NUMERIC_KINDS = ("numeric",)
CATEGORICAL_KINDS = ("categorical", "boolean", "text")
DROPPED_KINDS = ("datetime",)
MISSING_CATEGORY = "__missing__"
# Beyond this many categories a column's rarest ones are pooled into one "infrequent" column,
# which bounds the width of the design matrix for ID-like or free-text columns.
MAX_CATEGORIES = 30


def as_category_strings(X: Any) -> Any:
    """Every value as a string, missing values as :data:`MISSING_CATEGORY` (module-level: picklable)."""
    import pandas as pd

    frame = pd.DataFrame(X).astype("object")
    missing = frame.isna()
    frame = frame.astype(str)
    return frame.mask(missing, MISSING_CATEGORY)


def _kinds(columns_meta_or_frame: Sequence[dict[str, Any]] | pd.DataFrame) -> dict[str, str]:
    import pandas as pd

    if isinstance(columns_meta_or_frame, pd.DataFrame):
        from workbench.data.datasets import column_kind

        return {str(name): column_kind(columns_meta_or_frame[name]) for name in columns_meta_or_frame.columns}
    kinds: dict[str, str] = {}
    for entry in columns_meta_or_frame:
        if "name" not in entry or "kind" not in entry:
            raise InvalidInput(
                f"columns_meta entries need 'name' and 'kind' (as in Dataset.columns); got {entry!r}.",
                field="columns_meta",
            )
        kinds[str(entry["name"])] = str(entry["kind"])
    return kinds


def feature_kinds(
    columns_meta_or_frame: Sequence[dict[str, Any]] | pd.DataFrame, *, features: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """The feature columns grouped as ``{"numeric": [...], "categorical": [...], "dropped": [...]}``."""
    kinds = _kinds(columns_meta_or_frame)
    names = list(features) if features is not None else list(kinds)
    unknown = [n for n in names if n not in kinds]
    if unknown:
        raise InvalidInput(
            f"features {unknown} are not among the columns ({', '.join(kinds)}).", field="features"
        )
    groups: dict[str, list[str]] = {"numeric": [], "categorical": [], "dropped": []}
    for name in names:
        kind = kinds[name]
        if kind in NUMERIC_KINDS:
            groups["numeric"].append(name)
        elif kind in CATEGORICAL_KINDS:
            groups["categorical"].append(name)
        else:
            groups["dropped"].append(name)
    return groups


def build_preprocessor(
    columns_meta_or_frame: Sequence[dict[str, Any]] | pd.DataFrame,
    *,
    scale: bool,
    features: Sequence[str] | None = None,
) -> ColumnTransformer:
    """A ColumnTransformer for the given columns (``Dataset.columns`` or a frame of features).

    ``features`` restricts it to the model's inputs (default: every column given). ``scale``
    adds a StandardScaler to numeric columns (linear models want it; trees do not). The output
    is dense, so any estimator can follow.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    groups = feature_kinds(columns_meta_or_frame, features=features)
    if not groups["numeric"] and not groups["categorical"]:
        raise InvalidInput(
            "There is no usable feature column: every input is a date/time or there are no inputs "
            f"(dropped: {groups['dropped']}). Add numeric or categorical columns to the dataset.",
            field="features",
        )
    transformers: list[tuple[str, Any, list[str]]] = []
    if groups["numeric"]:
        numeric_steps: list[tuple[str, Any]] = [
            # keep_empty_features: an all-missing column in train must not change the output width.
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True))
        ]
        if scale:
            numeric_steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(numeric_steps), groups["numeric"]))
    if groups["categorical"]:
        categorical = Pipeline(
            [
                ("strings", FunctionTransformer(as_category_strings, feature_names_out="one-to-one")),
                (
                    "onehot",
                    OneHotEncoder(handle_unknown="ignore", max_categories=MAX_CATEGORIES,
                                  sparse_output=False),
                ),
            ]
        )
        transformers.append(("categorical", categorical, groups["categorical"]))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
