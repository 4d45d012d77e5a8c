"""Rollout traffic written to a real workbench DB as the serving side writes it: the champion's prediction-log
rows (labels through the real /feedback service function), the challenger's shadow predictions (linked by
request id), or its canary answers (``variant``/``rollout_id`` on the log row). Messy features on purpose:
missing values, an unseen plan, odd spacing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import update

from workbench.db import session_scope
from workbench.db.models import PredictionLog, ShadowPrediction, utcnow

PLANS = ("basic", "plus", "pro", " pro", "enterprise")  # " pro" and "enterprise": spacing, an unseen value


@dataclass(frozen=True)
class Traffic:
    """What was written: request ids per variant, and how many labels."""

    champion_ids: list[str]
    challenger_ids: list[str]
    labelled: int


def _features(rng: np.random.Generator) -> dict[str, object]:
    return {
        "age": None if rng.random() < 0.08 else int(rng.integers(18, 80)),
        "plan": None if rng.random() < 0.06 else str(rng.choice(PLANS)),
        "monthly_fee": None if rng.random() < 0.07 else round(float(rng.normal(30, 10)), 2),
    }


def write_shadow_traffic(deployment_id: int, rollout_id: int, *, n: int, prefix: str, seed: int = 0,
                         champion_accuracy: float = 0.7, challenger_accuracy: float = 0.7,
                         label_share: float = 1.0, challenger_errors: int = 0) -> Traffic:
    """``n`` requests answered by the champion and scored in shadow by the challenger; a share labelled.

    Each variant is right with its own probability, so the verdict's inputs are known; the last
    ``challenger_errors`` shadow rows hold an error instead of a prediction.
    """
    from workbench.prediction_log import insert_rows, make_row, record_feedback

    rng = np.random.default_rng(seed)
    ids = [f"{prefix}-{i}" for i in range(n)]
    labels = rng.choice(["yes", "no"], size=n)
    flip = {"yes": "no", "no": "yes"}
    champion = [lab if rng.random() < champion_accuracy else flip[lab] for lab in labels]
    challenger = [lab if rng.random() < challenger_accuracy else flip[lab] for lab in labels]
    rows = [make_row(deployment_id=deployment_id, request_id=rid, features=_features(rng), prediction=pred,
                     latency_ms=float(rng.gamma(4.0, 1.5))) for rid, pred in zip(ids, champion, strict=True)]
    with session_scope() as session:
        insert_rows(session, rows)
        now = utcnow()
        session.add_all([
            ShadowPrediction(rollout_id=rollout_id, deployment_id=deployment_id, request_id=rid, ts=now,
                             prediction=None if i >= n - challenger_errors else pred,
                             error="ValueError: challenger failed" if i >= n - challenger_errors else None,
                             latency_ms=float(rng.gamma(4.0, 2.0)))
            for i, (rid, pred) in enumerate(zip(ids, challenger, strict=True))
        ])
    labelled = round(n * label_share)
    with session_scope() as session:
        for rid, label in zip(ids[:labelled], labels[:labelled], strict=True):
            record_feedback(session, request_id=rid, label=str(label), deployment_id=deployment_id)
    return Traffic(champion_ids=ids, challenger_ids=ids[: n - challenger_errors], labelled=labelled)


def write_canary_traffic(deployment_id: int, rollout_id: int, *, n: int, prefix: str, share: float,
                         seed: int = 0) -> Traffic:
    """``n`` labelled requests, about ``share`` of them answered by the challenger (its log rows carry the variant)."""
    from workbench.prediction_log import insert_rows, make_row, record_feedback

    rng = np.random.default_rng(seed)
    rows, champion_ids, challenger_ids = [], [], []
    for i in range(n):
        rid = f"{prefix}-{i}"
        variant = "challenger" if rng.random() < share else "champion"
        row = make_row(deployment_id=deployment_id, request_id=rid, features=_features(rng),
                       prediction=str(rng.choice(["yes", "no"])), latency_ms=float(rng.gamma(4.0, 1.5)))
        rows.append(row)
        (challenger_ids if variant == "challenger" else champion_ids).append(rid)
    with session_scope() as session:
        insert_rows(session, rows)
        # The answering variant, as the serving side records it on each row of a canary.
        for variant, ids in (("champion", champion_ids), ("challenger", challenger_ids)):
            session.execute(update(PredictionLog).where(PredictionLog.request_id.in_(ids))
                            .values(variant=variant, rollout_id=rollout_id))
    with session_scope() as session:
        for row in rows:
            record_feedback(session, request_id=row["request_id"], label=str(rng.choice(["yes", "no"])),
                            deployment_id=deployment_id)
    return Traffic(champion_ids=champion_ids, challenger_ids=challenger_ids, labelled=n)
