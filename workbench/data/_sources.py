"""Built-in and synthetic datasets (declared as data) and the resolution of dataset specs.

A spec is a path to a CSV or Parquet file, ``builtin:<name>`` (:data:`BUILTINS`) or
``synthetic:<name>[?param=value&...]`` (:data:`SYNTHETIC`, parameters in :data:`SYNTHETIC_PARAMS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd

from workbench.data._upload import read_upload
from workbench.errors import InvalidInput, NotFound, check_choice
from workbench.settings import Settings


@dataclass(frozen=True)
class BuiltinSpec:
    """One of scikit-learn's bundled datasets, with the setup that suits it."""

    loader: str
    task_type: str
    description: str
    target: str = "target"


BUILTINS: dict[str, BuiltinSpec] = {
    "breast_cancer": BuiltinSpec("load_breast_cancer", "classification", "Breast cancer diagnosis (569 rows)"),
    "wine": BuiltinSpec("load_wine", "classification", "Wine cultivars from chemistry (178 rows)"),
    "diabetes": BuiltinSpec("load_diabetes", "regression", "Diabetes progression after a year (442 rows)"),
    "iris": BuiltinSpec("load_iris", "classification", "Iris species from flower measurements (150 rows)"),
}


@dataclass(frozen=True)
class SyntheticSpec:
    """A generated, time-stamped dataset whose distribution drifts after a point in time."""

    task_type: str
    target: str
    description: str
    generator: str  # name of the function in this module that builds the frame


SYNTHETIC: dict[str, SyntheticSpec] = {
    "churn": SyntheticSpec(
        "classification",
        "churned",
        "Customer churn (yes/no) over time; charges shift, the contract mix changes, "
        "and what drives churn changes after the drift point",
        "_generate_churn",
    ),
    "demand": SyntheticSpec(
        "regression",
        "units_sold",
        "Daily-ish product demand over time; temperature shifts, the store mix changes "
        "and price sensitivity changes after the drift point",
        "_generate_demand",
    ),
}

DRIFT_KINDS = ("shift", "mix", "concept")


@dataclass(frozen=True)
class Param:
    """One ``synthetic:`` parameter: its type, default and allowed range."""

    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None


TYPE_NAMES = {int: "a whole number", float: "a number", str: "text"}

SYNTHETIC_PARAMS: dict[str, Param] = {
    "rows": Param(int, 2000, "number of rows", 10, 5_000_000),
    "seed": Param(int, 0, "random seed (same seed, same data)", 0, 2**32 - 1),
    "drift": Param(float, 1.0, "drift strength after the drift point (0 = no drift)", 0.0, 5.0),
    "drift_start": Param(float, 0.7, "where drift starts, as a fraction of the time range", 0.0, 1.0),
    "drift_kinds": Param(str, "shift,mix,concept", f"comma-separated subset of {', '.join(DRIFT_KINDS)}"),
    "start": Param(str, "2024-01-01", "timestamp of the first row"),
    "freq": Param(str, "1h", "time between rows (a pandas offset such as 1h, 15min, 1D)"),
    "missing": Param(float, 0.0, "share of missing values put into some feature columns", 0.0, 0.5),
}


def parse_synthetic_params(query: str) -> dict[str, Any]:
    """Typed, range-checked parameters from ``rows=5000&drift=0.5``; defaults fill the rest."""
    values: dict[str, Any] = {name: p.default for name, p in SYNTHETIC_PARAMS.items()}
    for name, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in SYNTHETIC_PARAMS:
            raise InvalidInput(
                f"synthetic parameter {name!r} is unknown; allowed: {', '.join(SYNTHETIC_PARAMS)}.",
                field="dataset",
            )
        param = SYNTHETIC_PARAMS[name]
        try:
            value = param.kind(raw)
        except ValueError as exc:
            raise InvalidInput(
                f"synthetic parameter {name} must be {TYPE_NAMES[param.kind]} ({param.help}); got {raw!r}.",
                field="dataset",
            ) from exc
        if param.low is not None and param.high is not None and not param.low <= value <= param.high:
            raise InvalidInput(
                f"synthetic parameter {name} must be between {param.low:g} and {param.high:g} "
                f"({param.help}); got {raw!r}.",
                field="dataset",
            )
        values[name] = value
    kinds = [k.strip() for k in str(values["drift_kinds"]).split(",") if k.strip()]
    for kind in kinds:
        check_choice("drift_kinds", kind, DRIFT_KINDS)
    values["drift_kinds"] = tuple(kinds)
    try:
        values["start"] = pd.Timestamp(values["start"])
        values["freq"] = pd.tseries.frequencies.to_offset(values["freq"])
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"synthetic parameters start/freq are not valid: {exc}.", field="dataset") from exc
    return values


def _drift_weights(timestamps: pd.DatetimeIndex, start_fraction: float) -> np.ndarray:
    """0 before the drift point, ramping to 1 over the next 5% of the time range (not a cliff)."""
    position = np.linspace(0.0, 1.0, len(timestamps)) if len(timestamps) > 1 else np.zeros(len(timestamps))
    ramp = 0.05
    return np.clip((position - start_fraction) / ramp, 0.0, 1.0)


def _with_missing(frame: pd.DataFrame, columns: list[str], share: float, rng: np.random.Generator) -> None:
    if share <= 0:
        return
    for column in columns:
        mask = rng.random(len(frame)) < share
        frame.loc[mask, column] = np.nan


def _timeline(
    p: dict[str, Any],
) -> tuple[np.random.Generator, pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """The generator's random source, timestamps and per-row strengths of each drift kind asked for."""
    rng = np.random.default_rng(p["seed"])
    n = p["rows"]
    timestamps = pd.date_range(p["start"], periods=n, freq=p["freq"])
    w = _drift_weights(timestamps, p["drift_start"]) * p["drift"]
    kinds = p["drift_kinds"]
    shift = w if "shift" in kinds else np.zeros(n)
    mix = np.clip(w, 0, 1) if "mix" in kinds else np.zeros(n)
    concept = np.clip(w, 0, 1) if "concept" in kinds else np.zeros(n)
    return rng, timestamps, shift, mix, concept


def _generate_churn(p: dict[str, Any]) -> pd.DataFrame:
    rng, timestamps, shift, mix, concept = _timeline(p)
    n = len(timestamps)

    tenure = rng.gamma(2.0, 12.0, n).round(0).clip(0, 72)
    # Numeric shift: charges rise by up to 25 per unit of drift.
    charges = rng.normal(65.0, 20.0, n).clip(15, 150) + 25.0 * shift
    support_calls = rng.poisson(1.5, n)
    # Category mix: month-to-month contracts gain share as drift grows.
    p_monthly = 0.45 + 0.4 * mix
    u = rng.random(n)
    contract = np.where(
        u < p_monthly, "month-to-month", np.where(u < p_monthly + (1 - p_monthly) / 2, "one-year", "two-year")
    )
    payment = rng.choice(["card", "bank transfer", "electronic check", "mailed check"], n, p=[0.3, 0.25, 0.3, 0.15])
    region = rng.choice(["north", "south", "east", "west"], n)
    has_partner = rng.random(n) < 0.5
    # Concept drift: before, support calls and short tenure drive churn; after, price does.
    logit = (
        -1.2
        + (0.55 * (1 - concept)) * (support_calls - 1.5)
        - (0.05 * (1 - concept)) * (tenure - 24)
        + (0.06 * concept) * (charges - 65)
        + 0.9 * (contract == "month-to-month")
        - 0.3 * has_partner
    )
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "timestamp": timestamps,
            "tenure_months": tenure,
            "monthly_charges": charges.round(2),
            "support_calls": support_calls,
            "contract": contract,
            "payment_method": payment,
            "region": region,
            "has_partner": has_partner,
            "churned": np.where(churned, "yes", "no"),
        }
    )
    _with_missing(frame, ["tenure_months", "payment_method"], p["missing"], rng)
    return frame


def _generate_demand(p: dict[str, Any]) -> pd.DataFrame:
    rng, timestamps, shift, mix, concept = _timeline(p)
    n = len(timestamps)

    day_of_year = timestamps.dayofyear.to_numpy()
    # Numeric shift: it gets warmer by up to 8 degrees per unit of drift.
    temperature = 12 + 10 * np.sin(2 * np.pi * (day_of_year - 100) / 365) + rng.normal(0, 3, n) + 8.0 * shift
    price = rng.uniform(2.0, 8.0, n).round(2)
    promotion = rng.random(n) < 0.2
    # Category mix: online stores gain share as drift grows.
    p_online = 0.2 + 0.5 * mix
    u = rng.random(n)
    store_type = np.where(u < p_online, "online", np.where(u < p_online + (1 - p_online) * 0.6, "city", "mall"))
    weekend = timestamps.dayofweek.to_numpy() >= 5
    # Concept drift: customers become twice as sensitive to price.
    elasticity = 6.0 * (1 + concept)
    units = (
        80
        + 2.0 * temperature
        - elasticity * price
        + 25 * promotion
        + 15 * weekend
        + np.select([store_type == "online", store_type == "city"], [10.0, 5.0], 0.0)
        + rng.normal(0, 8, n)
    ).clip(0)
    frame = pd.DataFrame(
        {
            "timestamp": timestamps,
            "temperature": temperature.round(1),
            "price": price,
            "promotion": promotion,
            "store_type": store_type,
            "weekend": weekend,
            "units_sold": units.round(1),
        }
    )
    _with_missing(frame, ["temperature", "store_type"], p["missing"], rng)
    return frame


def _builtin_frame(name: str) -> pd.DataFrame:
    from sklearn import datasets as skdatasets

    spec = BUILTINS[name]
    bunch = getattr(skdatasets, spec.loader)(as_frame=True)
    frame = bunch.frame.copy()
    if spec.task_type == "classification":
        # Readable class labels ("malignant") instead of codes (0), as a user's data would have.
        names = [str(n) for n in bunch.target_names]
        frame["target"] = pd.Series(np.asarray(names, dtype=object)[frame["target"].to_numpy()], index=frame.index)
    return frame


def dataset_choices() -> dict[str, str]:
    """Every built-in and synthetic spec with a one-line description (for pickers and help)."""
    choices = {f"builtin:{name}": spec.description for name, spec in BUILTINS.items()}
    choices.update({f"synthetic:{name}": spec.description for name, spec in SYNTHETIC.items()})
    return choices


def suggested_setup(spec: str) -> dict[str, Any] | None:
    """The target, task and time column that suit a built-in or synthetic spec (None for files)."""
    scheme, _, rest = spec.partition(":")
    name = rest.split("?", 1)[0]
    if scheme == "builtin" and name in BUILTINS:
        b = BUILTINS[name]
        return {"target": b.target, "task_type": b.task_type, "time_column": None}
    if scheme == "synthetic" and name in SYNTHETIC:
        s = SYNTHETIC[name]
        return {"target": s.target, "task_type": s.task_type, "time_column": "timestamp"}
    return None


def resolve_spec(spec: str, *, settings: Settings | None = None) -> tuple[pd.DataFrame, str]:
    """The frame and its source label for a file path, ``builtin:NAME`` or ``synthetic:NAME?...``."""
    spec = (spec or "").strip()
    if not spec:
        raise InvalidInput(
            "dataset must be a CSV/Parquet path, builtin:NAME or synthetic:NAME; got an empty value.",
            field="dataset",
        )
    scheme, sep, rest = spec.partition(":")
    if sep and scheme == "builtin":
        check_choice("builtin dataset", rest, tuple(BUILTINS))
        return _builtin_frame(rest), spec
    if sep and scheme == "synthetic":
        name, _, query = rest.partition("?")
        check_choice("synthetic dataset", name, tuple(SYNTHETIC))
        params = parse_synthetic_params(query)
        generator: Callable[[dict[str, Any]], pd.DataFrame] = globals()[SYNTHETIC[name].generator]
        return generator(params), spec
    path = Path(spec).expanduser()
    if not path.exists():
        raise NotFound(
            f"dataset {spec!r} is not a file, builtin:NAME ({', '.join(BUILTINS)}) "
            f"or synthetic:NAME ({', '.join(SYNTHETIC)}); check the path."
        )
    if path.is_dir():
        raise InvalidInput(f"dataset {spec!r} is a folder; give the path of a .csv or .parquet file.", field="dataset")
    frame = read_upload(filename=path.name, data=path, settings=settings)
    return frame, f"file:{path.name}"
