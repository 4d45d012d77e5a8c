"""Tree ensembles as flat arrays, walked for all trees at once: the compiled fast path's estimators.

sklearn predicts tree by tree: for every tree a Python call, an input check (and for forests a
joblib dispatch) and an allocation, which for one record costs far more than the comparisons.
Here the nodes of every tree are packed into one set of flat arrays (:class:`FlatTrees`) and all
trees advance one level per numpy step. Two ensembles are packed this way:

:class:`FlatGradientBoosting` (HistGradientBoosting classifiers and regressors, no categorical
splits): the input is float64, ``x <= threshold`` goes left, NaN follows ``missing_go_to_left``,
and each class's leaf values are added one after the other to its baseline, as sklearn's running
sum does; the link (sigmoid, softmax, identity...) is the model's own loss. The model loader
checks it against the Pipeline on probe records within a tight tolerance.

:class:`FlatForest` (random forests and extra trees, one output). Everything that decides the
numbers is sklearn's own (read off scikit-learn 1.9's source):

- the input is cast to float32 first, as ``BaseForest._validate_X_predict`` does, and the float32
  values are compared with the float64 thresholds (``x <= threshold`` goes left); an infinite value
  after that cast is an error, and so is NaN when the trees do not support missing values;
- NaN follows ``tree_.missing_go_to_left``, as ``Tree._apply_dense`` does;
- a leaf's output is ``tree_.value`` itself (a classifier's class fractions, a regressor's mean),
  and the trees' outputs are added one after the other in ``estimators_`` order to a float64 zero,
  then divided by the number of trees, as ``_accumulate_prediction`` and ``predict``/``predict_proba``
  do with ``n_jobs=1``.

Two checks guard the forests against another sklearn version doing otherwise. Built, the flat
forest compares itself with the estimator bit for bit on rows made of its own split points (a
difference raises :class:`NotCompilable`, and the estimator itself scores the compiled matrix); and
the model loader compares the whole compiled path with the Pipeline bit for bit on its probe
records (``exact``), serving on the Pipeline at any difference. :class:`NotCompilable` lives here so
that :mod:`workbench.serving.fast_path` can import this module without a cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_TREE_LEAF = -1  # sklearn.tree._tree.TREE_LEAF
# The flat copy costs about 60 bytes a node on top of sklearn's own; bigger forests keep sklearn's walk.
MAX_NODES = 4_000_000
# One row is walked by testing every node at once (FlatTrees._walk_one) when the ensemble has at most
# this many nodes per tree and level walked (small boosted trees); otherwise level by level (big forests).
ONE_ROW_NODES_PER_STEP = 8
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


class FlatTrees:
    """The nodes of several fitted trees packed into flat arrays, and the walk of all of them at once.

    Node ``i`` of the packed trees lives at the even position ``2 * i`` of the per-node arrays, so
    its children are ``children2[2 * i]`` (right) and ``children2[2 * i + 1]`` (left): one addition
    of the comparison's outcome picks the next node. Leaves point at themselves, so walking the
    deepest tree's number of levels is harmless for the shallower ones.
    """

    feature2: np.ndarray
    threshold2: np.ndarray
    missing_left2: np.ndarray
    children2: np.ndarray
    values: np.ndarray  # (nodes, width): a leaf's output
    roots2: np.ndarray
    depth: int
    n_trees: int
    n_features_in_: int

    def _pack(self, trees: list[dict[str, Any]], *, n_features: int) -> None:
        """Pack trees given as per-node arrays: ``leaf`` (bool), ``left``/``right`` (tree-local
        indices), ``feature``, ``threshold``, ``missing_left``, ``value`` (nodes, width) and ``depth``."""
        features: list[np.ndarray] = []
        thresholds: list[np.ndarray] = []
        missing_left: list[np.ndarray] = []
        children: list[np.ndarray] = []
        values: list[np.ndarray] = []
        roots: list[int] = []
        depth = 0
        offset = 0
        for tree in trees:
            leaf = tree["leaf"]
            count = len(leaf)
            index = np.arange(count, dtype=np.intp) + offset
            left = np.where(leaf, index, tree["left"].astype(np.intp) + offset)
            right = np.where(leaf, index, tree["right"].astype(np.intp) + offset)
            # children[2 * i + go_left]: 2 * right when the test fails, 2 * left when it holds.
            children.append(np.stack([2 * right, 2 * left], axis=1).reshape(-1))
            features.append(np.where(leaf, 0, tree["feature"]).astype(np.intp))
            thresholds.append(np.where(leaf, 0.0, tree["threshold"]).astype(np.float64))
            missing_left.append(tree["missing_left"].astype(bool))
            values.append(np.asarray(tree["value"], dtype=np.float64))
            roots.append(2 * offset)
            depth = max(depth, int(tree["depth"]))
            offset += count
        if not roots:
            raise NotCompilable("an ensemble without trees")
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
        # The same nodes one slot each, for one row: every node's test at once, then one take a level.
        self.feature1 = np.ascontiguousarray(self.feature2[0::2])
        self.threshold1 = np.ascontiguousarray(self.threshold2[0::2])
        self.left1 = np.ascontiguousarray(self.children2[1::2] >> 1)
        self.right1 = np.ascontiguousarray(self.children2[0::2] >> 1)
        self.roots1 = self.roots2 >> 1

    def _walk(self, x: np.ndarray) -> np.ndarray:
        """Each row's leaf output in every tree, shape (rows, trees, width), for float64 rows ``x``.

        The comparisons are float64 ones: a float32 input cast to float64 first compares exactly
        as C compares a float32 promoted to double.
        """
        n_rows = x.shape[0]
        flat = np.ascontiguousarray(x, dtype=np.float64).ravel()
        has_nan = bool(np.isnan(flat).any())
        if n_rows == 1 and len(self.feature1) <= ONE_ROW_NODES_PER_STEP * self.n_trees * self.depth:
            return self._walk_one(flat, has_nan)
        if n_rows == 1:
            node = self.roots2
            base = None
        else:
            node = np.broadcast_to(self.roots2, (n_rows, self.n_trees))
            base = (np.arange(n_rows, dtype=np.intp) * self.n_features_in_)[:, None]
        feature2, threshold2, children2 = self.feature2, self.threshold2, self.children2
        for level in range(self.depth):
            feature = feature2.take(node)
            if base is not None:
                feature += base
            value = flat.take(feature)
            go_left = value <= threshold2.take(node)
            if has_nan:
                go_left = np.where(np.isnan(value), self.missing_left2.take(node), go_left)
            moved = children2.take(node + go_left)
            # Leaves point at themselves: no row moved means every row is at a leaf in every tree
            # (not checked for one row, whose few takes a level cost less than the check).
            if base is not None and level % 4 == 3 and np.array_equal(moved, node):
                break
            node = moved
        leaves = self.values.take(node >> 1, axis=0)
        return leaves if base is not None else leaves[None]

    def _walk_one(self, flat: np.ndarray, has_nan: bool) -> np.ndarray:
        """:meth:`_walk` for one row: the same tests, made for every node at once, then followed."""
        value = flat.take(self.feature1)
        go_left = value <= self.threshold1
        if has_nan:
            go_left = np.where(np.isnan(value), self.missing_left2[0::2], go_left)
        step = np.where(go_left, self.left1, self.right1)  # every node's next node (a leaf: itself)
        node = self.roots1
        for _ in range(self.depth):  # one small take a level: cheaper than checking for an early end
            node = step.take(node)
        return self.values.take(node, axis=0)[None]


class FlatGradientBoosting(FlatTrees):
    """A fitted HistGradientBoosting classifier or regressor as flat trees (see the module docstring).

    Trees are packed class by class, then iteration by iteration: class ``k``'s are the columns
    ``k * n_iter`` to ``(k + 1) * n_iter`` of the walk. Models with categorical features or splits
    raise :class:`NotCompilable`.
    """

    def __init__(self, estimator: Any) -> None:
        try:
            predictors = list(estimator._predictors)
            baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(-1)
            self.loss = estimator._loss
            n_trees_per_iteration = int(estimator.n_trees_per_iteration_)
            n_features = int(estimator.n_features_in_)
        except AttributeError as exc:  # another scikit-learn layout
            raise NotCompilable(f"HistGradientBoosting internals not as expected ({exc})") from exc
        if getattr(estimator, "_preprocessor", None) is not None:
            raise NotCompilable("HistGradientBoosting with categorical features")
        if len(baseline) != n_trees_per_iteration:
            raise NotCompilable("HistGradientBoosting baseline width differs from its trees per iteration")
        self.classifier = hasattr(estimator, "classes_")
        self.baseline = baseline
        self.n_k = n_trees_per_iteration
        self.n_iter = len(predictors)
        trees: list[dict[str, Any]] = []
        for k in range(self.n_k):
            for iteration in predictors:
                nodes = iteration[k].nodes
                if nodes["is_categorical"].any():
                    raise NotCompilable("HistGradientBoosting with categorical splits")
                trees.append({"leaf": nodes["is_leaf"].astype(bool), "left": nodes["left"], "right": nodes["right"],
                              "feature": nodes["feature_idx"], "threshold": nodes["num_threshold"],
                              "missing_left": nodes["missing_go_to_left"], "value": nodes["value"][:, None],
                              "depth": int(nodes["depth"].max())})
        if not trees:
            raise NotCompilable("HistGradientBoosting without trees")
        self._pack(trees, n_features=n_features)

    def raw_predict(self, x: np.ndarray) -> np.ndarray:
        """The raw scores (before the link), shape (rows, classes or 1): sklearn's running sums."""
        leaves = self._walk(np.asarray(x, dtype=np.float64))[:, :, 0]
        n_rows = leaves.shape[0]
        raw = np.empty((n_rows, self.n_k), dtype=np.float64)
        for k in range(self.n_k):
            # cumsum adds left to right like sklearn's running sum (baseline, then tree by tree).
            terms = np.empty((n_rows, self.n_iter + 1), dtype=np.float64)
            terms[:, 0] = self.baseline[k]
            terms[:, 1:] = leaves[:, k * self.n_iter : (k + 1) * self.n_iter]
            raw[:, k] = np.cumsum(terms, axis=1)[:, -1]
        return raw

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.loss.predict_proba(self.raw_predict(x)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.classifier:
            raise NotCompilable("predict of a classifier goes through predict_proba")
        return np.asarray(self.loss.link.inverse(self.raw_predict(x).ravel()))


class FlatForest(FlatTrees):
    """A fitted RandomForest/ExtraTrees classifier or regressor (one output) as flat trees."""

    # The load-time check compares the outputs bit for bit, not within a tolerance.
    exact = True

    def __init__(self, estimator: Any) -> None:
        if type(estimator) not in forest_types():
            raise NotCompilable(f"{type(estimator).__name__} is not a random forest or extra trees")
        try:
            tree_objects = [tree.tree_ for tree in estimator.estimators_]
            n_outputs = int(estimator.n_outputs_)
            n_features = int(estimator.n_features_in_)
            allow_nan = bool(estimator.estimators_[0]._support_missing_values(np.zeros((1, n_features))))
        except (AttributeError, IndexError, TypeError) as exc:  # another scikit-learn layout
            raise NotCompilable(f"forest internals not as expected ({exc})") from exc
        if n_outputs != 1:
            raise NotCompilable("a forest with several outputs")
        self.classifier = hasattr(estimator, "classes_")
        width = int(estimator.n_classes_) if self.classifier else 1
        total = sum(int(tree.node_count) for tree in tree_objects)
        if total > MAX_NODES:
            raise NotCompilable(f"a forest of {total} nodes (the flat copy stops at {MAX_NODES})")
        trees: list[dict[str, Any]] = []
        for tree in tree_objects:
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
            # A tree's predict_proba keeps the forest's classes (proba[:, :n_classes_]); predict takes output 0.
            trees.append({"leaf": leaf, "left": left_child, "right": right_child, "feature": tree.feature,
                          "threshold": tree.threshold, "missing_left": np.asarray(tree.missing_go_to_left),
                          "value": value[:, 0, :width], "depth": int(tree.max_depth)})
        if not trees:
            raise NotCompilable("a forest without trees")
        self._pack(trees, n_features=n_features)
        self.allow_nan = allow_nan
        self.width = width
        # Internal nodes only (a leaf points at itself).
        internal = self.children2[0::2] != 2 * np.arange(total, dtype=np.intp)
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
        # float32 -> float64 is exact, so the walk's comparisons are the C ones (float32 promoted to double).
        return self._walk(self._float32_input(x).astype(np.float64))

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
