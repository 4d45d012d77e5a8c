"""Random forests and extra trees as flat arrays, walked for all trees at once (the compiled fast path).

sklearn's forests predict tree by tree: for every tree a Python call, an input check, a joblib
dispatch and an allocation, which for one record costs far more than the comparisons. Here the
nodes of every tree are packed into flat arrays and all trees advance one level per numpy step.

Everything that decides the numbers is sklearn's own (read off scikit-learn 1.9's source):

- the input is cast to float32 first, as ``BaseForest._validate_X_predict`` does, and the float32
  values are compared with the float64 thresholds (``x <= threshold`` goes left); an infinite value
  after that cast is an error, and so is NaN when the trees do not support missing values;
- NaN follows ``tree_.missing_go_to_left``, as ``Tree._apply_dense`` does;
- a leaf's output is ``tree_.value`` itself (a classifier's class fractions, a regressor's mean),
  and the trees' outputs are added one after the other in ``estimators_`` order to a float64 zero,
  then divided by the number of trees, as ``_accumulate_prediction`` and ``predict``/``predict_proba``
  do with ``n_jobs=1``.

Two checks guard against another sklearn version doing otherwise. Built, the flat forest compares
itself with the estimator bit for bit on rows made of its own split points (a difference raises
:class:`NotCompilable`, and the estimator itself scores the compiled matrix); and the model loader
compares the whole compiled path with the Pipeline bit for bit on its probe records (``exact``),
serving on the Pipeline at any difference. :class:`NotCompilable` lives here so that
:mod:`workbench.serving.fast_path` can import this module without a cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_TREE_LEAF = -1  # sklearn.tree._tree.TREE_LEAF
# The flat copy costs about 60 bytes a node on top of sklearn's own; bigger forests keep sklearn's walk.
MAX_NODES = 4_000_000
# Rows per call of the load-time comparison with sklearn at the split points (the fast path's limit).
FAST_PATH_CHECK_ROWS = 256


class NotCompilable(Exception):
    """The pipeline uses something the fast path does not reproduce exactly (the message says what)."""


def forest_types() -> tuple[type, ...]:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    return (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor)


class FlatForest:
    """A fitted RandomForest/ExtraTrees classifier or regressor (one output) as flat node arrays.

    Node ``i`` of the packed forest lives at the even position ``2 * i`` of the per-node arrays, so
    its children are ``children[2 * i]`` (right) and ``children[2 * i + 1]`` (left): one addition of
    the comparison's outcome picks the next node. Leaves point at themselves, so walking the
    deepest tree's number of levels is harmless for the shallower ones.
    """

    # The load-time check compares the outputs bit for bit, not within a tolerance.
    exact = True

    def __init__(self, estimator: Any) -> None:
        if type(estimator) not in forest_types():
            raise NotCompilable(f"{type(estimator).__name__} is not a random forest or extra trees")
        try:
            trees = [tree.tree_ for tree in estimator.estimators_]
            n_outputs = int(estimator.n_outputs_)
            n_features = int(estimator.n_features_in_)
            allow_nan = bool(estimator.estimators_[0]._support_missing_values(np.zeros((1, n_features))))
        except (AttributeError, IndexError, TypeError) as exc:  # another scikit-learn layout
            raise NotCompilable(f"forest internals not as expected ({exc})") from exc
        if n_outputs != 1:
            raise NotCompilable("a forest with several outputs")
        self.classifier = hasattr(estimator, "classes_")
        width = int(estimator.n_classes_) if self.classifier else 1
        features: list[np.ndarray] = []
        thresholds: list[np.ndarray] = []
        missing_left: list[np.ndarray] = []
        children: list[np.ndarray] = []
        values: list[np.ndarray] = []
        roots: list[int] = []
        depth = 0
        offset = 0
        total = sum(int(tree.node_count) for tree in trees)
        if total > MAX_NODES:
            raise NotCompilable(f"a forest of {total} nodes (the flat copy stops at {MAX_NODES})")
        for tree in trees:
            count = int(tree.node_count)
            value = np.asarray(tree.value, dtype=np.float64)
            if tree.n_outputs != 1 or value.shape != (count, 1, int(tree.max_n_classes)):
                raise NotCompilable("a tree's values are not laid out as expected")
            if value.shape[2] < width:
                raise NotCompilable("a tree has fewer classes than the forest")
            left_child = np.asarray(tree.children_left, dtype=np.intp)
            right_child = np.asarray(tree.children_right, dtype=np.intp)
            leaf = left_child == _TREE_LEAF
            if not np.array_equal(leaf, right_child == _TREE_LEAF):
                raise NotCompilable("a tree node with a single child")
            index = np.arange(count, dtype=np.intp) + offset
            left = np.where(leaf, index, left_child + offset)
            right = np.where(leaf, index, right_child + offset)
            # children[2 * i + go_left]: 2 * right when the test fails, 2 * left when it holds.
            children.append(np.stack([2 * right, 2 * left], axis=1).reshape(-1))
            features.append(np.where(leaf, 0, np.asarray(tree.feature, dtype=np.intp)))
            thresholds.append(np.where(leaf, 0.0, np.asarray(tree.threshold, dtype=np.float64)))
            missing_left.append(np.asarray(tree.missing_go_to_left, dtype=bool))
            # A tree's predict_proba keeps the forest's classes (proba[:, :n_classes_]); predict takes output 0.
            values.append(value[:, 0, :width])
            roots.append(2 * offset)
            depth = max(depth, int(tree.max_depth))
            offset += count
        if not roots:
            raise NotCompilable("a forest without trees")
        if max(int(f.max(initial=0)) for f in features) >= n_features:
            raise NotCompilable("a tree splits on a feature beyond the input width")
        self.feature2 = np.repeat(np.concatenate(features), 2)
        self.threshold2 = np.repeat(np.concatenate(thresholds), 2)
        self.missing_left2 = np.repeat(np.concatenate(missing_left), 2)
        self.children2 = np.concatenate(children)
        self.values = np.ascontiguousarray(np.concatenate(values))
        self.roots2 = np.asarray(roots, dtype=np.intp)
        self.depth = depth
        self.n_trees = len(roots)
        self.n_features_in_ = n_features
        self.allow_nan = allow_nan
        self.width = width
        # Internal nodes only (a leaf points at itself).
        internal = self.children2[0::2] != 2 * np.arange(offset, dtype=np.intp)
        self._check_at_split_points(estimator, self.feature2[0::2][internal], self.threshold2[0::2][internal])

    def _check_at_split_points(self, estimator: Any, features: np.ndarray, thresholds: np.ndarray) -> None:
        """Compare with the estimator itself, bit for bit, on rows made of the split points.

        Every value is a threshold of its feature, that threshold rounded to float32, or one step
        either side of either (and NaN when the trees take it): the values where a missing float32
        cast or a reversed comparison would show. A difference means sklearn's walk is not this one.
        """
        rng = np.random.default_rng(0)
        n_rows = 2 * FAST_PATH_CHECK_ROWS
        rows = rng.normal(size=(n_rows, self.n_features_in_))
        for j in range(self.n_features_in_):
            points = np.unique(thresholds[features == j])
            if len(points) == 0:
                continue
            points = rng.choice(points, size=min(len(points), 64), replace=False)
            as32 = points.astype(np.float32)
            candidates = np.concatenate([
                points, np.nextafter(points, -np.inf), np.nextafter(points, np.inf),
                as32, np.nextafter(as32, np.float32(-np.inf)), np.nextafter(as32, np.float32(np.inf)),
                [np.nan] if self.allow_nan else [],
            ]).astype(np.float64)
            with np.errstate(over="ignore"):  # a split of missing from present values is at +inf
                usable = np.isfinite(candidates.astype(np.float32)) | np.isnan(candidates)
            if usable.any():
                rows[:, j] = rng.choice(candidates[usable], size=n_rows)
        for start in range(0, n_rows, FAST_PATH_CHECK_ROWS):
            chunk = rows[start : start + FAST_PATH_CHECK_ROWS]
            if self.classifier:
                want, got = estimator.predict_proba(chunk), self.predict_proba(chunk)
            else:
                want, got = estimator.predict(chunk), self.predict(chunk)
            want = np.ascontiguousarray(want, dtype=np.float64)
            if want.shape != got.shape or want.tobytes() != np.ascontiguousarray(got).tobytes():
                raise NotCompilable("the flat trees differ from sklearn's at the split points")

    def _float32_input(self, x: np.ndarray) -> np.ndarray:
        """The input as sklearn's forest sees it: cast to float32, checked for infinities (and NaN)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got shape {x.shape}")
        with np.errstate(over="ignore"):
            x32 = np.asarray(x, dtype=np.float32)
        if self.allow_nan:
            if np.isinf(x32).any():
                raise ValueError("Input X contains infinity or a value too large for dtype('float32').")
        elif not np.isfinite(x32).all():
            raise ValueError("Input X contains NaN, infinity or a value too large for dtype('float32').")
        return x32

    def leaf_values(self, x: np.ndarray) -> np.ndarray:
        """Each row's leaf output in every tree, shape (rows, trees, width)."""
        x32 = self._float32_input(x)
        n_rows = x32.shape[0]
        # float32 -> float64 is exact, so these comparisons are the C ones (float32 promoted to double).
        flat = x32.astype(np.float64).ravel()
        node = np.broadcast_to(self.roots2, (n_rows, self.n_trees))
        base = (np.arange(n_rows, dtype=np.intp) * self.n_features_in_)[:, None] if n_rows > 1 else None
        has_nan = bool(np.isnan(flat).any())
        for level in range(self.depth):
            feature = self.feature2.take(node)
            if base is not None:
                feature += base
            value = flat.take(feature)
            go_left = value <= self.threshold2.take(node)
            if has_nan:
                go_left = np.where(np.isnan(value), self.missing_left2.take(node), go_left)
            moved = self.children2.take(node + go_left)
            # Leaves point at themselves: no row moved means every row is at a leaf in every tree.
            if level % 4 == 3 and np.array_equal(moved, node):
                break
            node = moved
        return self.values.take(node >> 1, axis=0)

    def _mean(self, x: np.ndarray) -> np.ndarray:
        leaves = self.leaf_values(x)
        n_rows = leaves.shape[0]
        # A zero, then tree by tree: cumsum adds left to right like sklearn's `out += prediction`.
        terms = np.zeros((n_rows, self.n_trees + 1, self.width), dtype=np.float64)
        terms[:, 1:] = leaves
        total = np.cumsum(terms, axis=1)[:, -1]
        total /= self.n_trees
        return total

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if not self.classifier:
            raise NotCompilable("predict_proba of a regressor")
        return self._mean(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.classifier:
            raise NotCompilable("predict of a classifier goes through predict_proba")
        return self._mean(x)[:, 0]
