"""A stream consumer's answer, encoded once: the JSON of its prediction and proba goes both into the
prediction log's row and into the prediction published back (it used to be encoded for each)."""

from __future__ import annotations

import json
from typing import Any


def encoded_answer(result: dict[str, Any]) -> tuple[str, str | None]:
    """An answer's prediction and proba as JSON (proba None when there is none), as the log stores them."""
    from workbench.prediction_log import encode_answer  # with its database models: not at the CLI's import

    return encode_answer(result["prediction"], result["proba"])


def prediction_payload(request_id: str, version: str, result: dict[str, Any], variant: str | None,
                        encoded: tuple[str, str | None]) -> bytes:
    """The published prediction: ``{"request_id", "model_version", "prediction", "proba"[, "variant"]}``.

    Built around the answer's already encoded values; the same bytes ``json.dumps`` gives for that
    dict. An answer with other keys than prediction and proba goes through ``json.dumps`` whole.
    """
    if len(result) != 2 or "prediction" not in result or "proba" not in result:
        from workbench.prediction_log import json_safe

        return json.dumps({"request_id": request_id, "model_version": version, **json_safe(result),
                           **({"variant": variant} if variant is not None else {})}).encode()
    dumps = json.dumps
    tail = "}" if variant is None else ', "variant": ' + dumps(variant) + "}"
    return ('{"request_id": ' + dumps(request_id) + ', "model_version": ' + dumps(version) + ', "prediction": '
            + encoded[0] + ', "proba": ' + (encoded[1] or "null") + tail).encode()
