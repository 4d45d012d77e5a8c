"""Sticky assignment of a request to the champion or the challenger.

Each key is hashed with a salt into a point ``u`` in ``[0, 1)``; the key goes to the challenger
when ``u < share``. Three properties follow, and the tests check each one:

- *Sticky*: the same key (and salt) always lands on the same point, so a user or an entity sees
  one variant for the whole rollout, in every process and after every restart. Python's
  ``hash`` is salted per process (PYTHONHASHSEED), so it would reshuffle users on each restart;
  BLAKE2b is stable, fast and in the standard library.
- *Proportional*: the points are uniform, so the challenger gets ``share`` of the keys up to
  binomial noise.
- *Monotone*: raising the share from 10 % to 20 % only moves keys whose point lies in
  ``[0.10, 0.20)`` from champion to challenger; no key on challenger goes back. A canary can grow
  without anyone flapping between models (which would mix the two variants' effects on a user).

The salt names the rollout: a new rollout (a new salt) draws a fresh, independent split, so the
same users are not always the guinea pigs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from workbench.errors import InvalidInput
from workbench.validation import Options, Real, Text, check_param

CHAMPION = "champion"
CHALLENGER = "challenger"
VARIANTS = (CHAMPION, CHALLENGER)

SHARE = Real(0.0, 1.0)
MODES = ("shadow", "canary", "ab")
# What each mode lets the challenger answer. Shadow scores the challenger on a copy of the
# traffic and answers with the champion; a canary is a small, growing slice; an A/B test splits.
# In shadow mode the share is that of the requests copied to the challenger (like a mirror's percentage in
# Istio or Envoy), every one by default: a lower share costs the serving machine less, for fewer pairs.
MODE_SHARES = {"shadow": Real(0.01, 1.0), "canary": Real(0.01, 0.50), "ab": Real(0.01, 0.99)}
AB_DEFAULT_SHARE = 0.5
SHADOW_DEFAULT_SHARE = 1.0
SALT = Text(max_length=200, min_length=1)
KEY_MAX = 1000  # characters; the prediction log keeps request ids far shorter
_SCALE = float(2**64)


def _key_text(key: Any) -> str:
    """The canonical text of a key, so that 42, 42.0 and "42" (JSON, CSV, CLI) hash alike.

    Booleans, None, NaN and containers are refused: they are not identifiers, and a None key
    usually means the key column is missing, in which case the caller should use the request id.
    """
    if isinstance(key, str):
        text = key
    elif isinstance(key, bool) or key is None:
        text = None
    elif isinstance(key, int | np.integer):
        text = str(int(key))
    elif isinstance(key, float | np.floating):
        number = float(key)
        if not math.isfinite(number):
            text = None
        elif number.is_integer():
            text = str(int(number))
        else:
            text = repr(number)
    else:
        text = None
    if text is None or len(text) > KEY_MAX:
        shown = repr(key) if len(repr(key)) <= 80 else repr(key)[:77] + "..."
        raise InvalidInput(
            f"key must be a text of at most {KEY_MAX} characters or a finite number "
            f"(the key column's value, else the request id); got {shown}.",
            field="key",
        )
    return text


def _point(text: str, salt_bytes: bytes) -> float:
    # Length-prefixing the salt makes (salt, key) -> bytes one-to-one: no salt/key pair can
    # collide with another by moving characters across the boundary.
    payload = len(salt_bytes).to_bytes(4, "big") + salt_bytes + text.encode("utf-8")
    digest = hashlib.blake2b(payload, digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assignment_point(key: Any, *, salt: str) -> float:
    """The key's stable point in ``[0, 1)`` for this salt (the challenger takes points below its share)."""
    salt = check_param("salt", salt, SALT)
    return _point(_key_text(key), salt.encode("utf-8"))


def assign_variant(key: Any, *, share: float, salt: str) -> str:
    """``"challenger"`` for a ``share`` of keys, ``"champion"`` for the others; the same key always alike.

    ``key`` is the value of the project's declared key column, else the request id (see
    :func:`routing_key`); ``salt`` names the rollout. ``share`` is in ``[0, 1]``: ``0`` keeps
    everything on the champion, a canary uses 0.01 to 0.50 and an A/B test usually 0.5 (see
    :func:`traffic_share`; a shadow rollout copies the requests this gives the challenger).
    """
    share = check_param("share", share, SHARE)
    return CHALLENGER if assignment_point(key, salt=salt) < share else CHAMPION


def assign_variants(keys: Iterable[Any], *, share: float, salt: str) -> np.ndarray:
    """:func:`assign_variant` for a batch of keys: an array of ``"champion"``/``"challenger"``.

    Hashing is per key (BLAKE2b has no vector form) but costs about a microsecond; the
    comparison with the share is vectorised.
    """
    share = check_param("share", share, SHARE)
    salt_bytes = check_param("salt", salt, SALT).encode("utf-8")
    points = np.fromiter((_point(_key_text(k), salt_bytes) for k in keys), dtype=float)
    return np.where(points < share, CHALLENGER, CHAMPION)


def routing_key(key_value: Any, request_id: str) -> Any:
    """What to hash: the declared key column's value when present, else the request id.

    With a key column (a user or customer id), one entity sees one variant across requests; a
    request without it still gets a stable variant (a retried request id answers alike).
    """
    if key_value is None or (isinstance(key_value, float) and math.isnan(key_value)):
        return request_id
    if isinstance(key_value, str) and not key_value.strip():
        return request_id
    return key_value


def traffic_share(mode: str, share: float | None = None) -> float:
    """The share of a rollout ``mode``, checked against the mode's bounds.

    In ``shadow`` mode the champion answers every request and ``share`` is the share of requests
    (by routing key, as a canary's) copied to the challenger: in [0.01, 1.0], every one (1.0) when
    None. In ``canary`` and ``ab`` it is the challenger's share of answers: a canary needs one in
    [0.01, 0.50]; ``ab`` takes one in [0.01, 0.99] and defaults to 0.5.
    """
    mode = check_param("mode", mode, Options(MODES))
    if share is None:
        if mode == "shadow":
            return SHADOW_DEFAULT_SHARE
        if mode == "ab":
            return AB_DEFAULT_SHARE
        raise InvalidInput(f"share is required in {mode} mode: give {MODE_SHARES[mode].describe()}.", field="share")
    return float(check_param("share", share, MODE_SHARES[mode], hint=f"({mode} mode)"))
