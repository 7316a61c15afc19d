"""The three model graphs: preprocessing + estimator + the contract's outputs.

Each ``*_model`` function returns an ``onnx.ModelProto``; each ``*_reference``
function computes the same outputs with numpy and scikit-learn, which is
what the parity test holds the ONNX graph to.
"""

from __future__ import annotations

import numpy as np
import onnx

from sensor.features.kdd import KDD_FEATURES
from sensor.training.onnx_graph import GraphBuilder, convert, float_output, string_output
from sensor.training.preprocess import Preprocessor

_DOC = "sensor {kind}: inputs are the 41 KDD features by name, [N, 1]; see models/README.md"


# -- classifier ----------------------------------------------------------------

def classifier_model(pre: Preprocessor, forest, metadata: dict[str, str]) -> onnx.ModelProto:
    """label = the most probable class (string); probabilities in ``forest.classes_`` order."""
    g = GraphBuilder()
    x = pre.emit(g)
    out = g.graft(convert(forest, pre.width), {"X": x}, "forest")
    g.node("Identity", [out["label"]], output="label")
    g.node("Identity", [out["probabilities"]], output="probabilities")
    return g.build(
        [string_output("label", "N"), float_output("probabilities", "N", len(forest.classes_))],
        metadata, _DOC.format(kind="classifier"),
    )


def classifier_reference(pre: Preprocessor, forest, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probabilities = forest.predict_proba(pre.transform(features)).astype(np.float32)
    return np.asarray(forest.classes_)[probabilities.argmax(axis=1)], probabilities


# -- autoencoder -----------------------------------------------------------------

def autoencoder_model(pre: Preprocessor, mlp, error_scale: np.ndarray, metadata: dict[str, str]) -> onnx.ModelProto:
    """score = mean over columns of (reconstruction - input)^2 / error_scale;
    contributions = each KDD feature's share of that mean (its columns'
    terms summed), so an alert can say which features made a record
    anomalous, and the 41 contributions add up to the score."""
    g = GraphBuilder()
    x = pre.emit(g)
    h = x
    last = len(mlp.coefs_) - 1
    for i, (w, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_)):
        h = g.node("Add", [g.node("MatMul", [h, g.const(w.astype(np.float32))]), g.const(b.astype(np.float32))])
        if i < last:
            h = g.node("Relu", [h])
    diff = g.node("Sub", [h, x])
    weighted = g.node("Div", [g.node("Mul", [diff, diff]), g.const(error_scale.astype(np.float32))])
    g.node("ReduceMean", [weighted], output="score", axes=[1], keepdims=0)
    g.node("MatMul", [weighted, g.const(_feature_shares(pre))], output="contributions")
    return g.build([float_output("score", "N"), float_output("contributions", "N", len(KDD_FEATURES))],
                   metadata, _DOC.format(kind="autoencoder"))


def _feature_shares(pre: Preprocessor) -> np.ndarray:
    """[columns, 41]: 1/columns where a column belongs to a feature."""
    columns = pre.column_features()
    shares = np.zeros((len(columns), len(KDD_FEATURES)), np.float32)
    shares[np.arange(len(columns)), columns] = 1.0 / len(columns)
    return shares


def contributions_reference(pre: Preprocessor, mlp, error_scale: np.ndarray, features: np.ndarray) -> np.ndarray:
    x = pre.transform(features)
    diff = mlp.predict(x).astype(np.float32) - x
    return (diff * diff / error_scale.astype(np.float32)) @ _feature_shares(pre)


def autoencoder_reference(pre: Preprocessor, mlp, error_scale: np.ndarray, features: np.ndarray) -> np.ndarray:
    x = pre.transform(features)
    return reconstruction_error(mlp, x, error_scale)


def reconstruction_error(mlp, x: np.ndarray, error_scale: np.ndarray) -> np.ndarray:
    diff = mlp.predict(x).astype(np.float32) - x
    return (diff * diff / error_scale.astype(np.float32)).mean(axis=1)


# -- isolation forest ------------------------------------------------------------
# skl2onnx's converter recomputes every tree's path-length correction with
# a dozen elementwise ops per batch (36k records/s).  The correction only
# depends on the leaf, so it is folded into the leaf values of a single
# TreeEnsembleRegressor whose sum is the total path length.

def isolation_forest_model(pre: Preprocessor, forest, metadata: dict[str, str]) -> onnx.ModelProto:
    """score = -score_samples, the anomaly score of Liu et al. (2008),
    2^(-mean path length / c(max_samples)), in (0, 1]: higher = more anomalous."""
    g = GraphBuilder()
    x = pre.emit(g)
    attrs: dict[str, list] = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids", "target_treeids", "target_nodeids", "target_ids", "target_weights")}
    for t, (tree, features) in enumerate(zip(forest.estimators_, forest.estimators_features_)):
        _add_isolation_tree(attrs, t, tree.tree_, np.asarray(features))
    total = g.node("TreeEnsembleRegressor", [x], domain="ai.onnx.ml", n_targets=1, aggregate_function="SUM",
                   post_transform="NONE", **attrs)
    denominator = len(forest.estimators_) * _average_path_length(np.array([forest.max_samples_]))[0]
    exponent = g.node("Mul", [total, g.const(np.float32(-np.log(2.0) / denominator))])
    g.node("Reshape", [g.node("Exp", [exponent]), g.const(np.array([-1], np.int64))], output="score")
    return g.build([float_output("score", "N")], metadata, _DOC.format(kind="isolation_forest"))


def isolation_forest_reference(pre: Preprocessor, forest, features: np.ndarray) -> np.ndarray:
    return (-forest.score_samples(pre.transform(features))).astype(np.float32)


def _add_isolation_tree(attrs: dict[str, list], t: int, tree, features: np.ndarray) -> None:
    left, right = tree.children_left, tree.children_right
    depth = np.ones(tree.node_count)  # the root counts as depth 1, as in scikit-learn
    for node in range(tree.node_count):  # children always come after their parent
        if left[node] >= 0:
            depth[left[node]] = depth[right[node]] = depth[node] + 1
    leaf_value = depth + _average_path_length(tree.n_node_samples.astype(np.float64)) - 1.0
    for node in range(tree.node_count):
        leaf = left[node] < 0
        attrs["nodes_treeids"].append(t)
        attrs["nodes_nodeids"].append(node)
        attrs["nodes_featureids"].append(0 if leaf else int(features[tree.feature[node]]))
        attrs["nodes_values"].append(0.0 if leaf else _float32_at_most(tree.threshold[node]))
        attrs["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
        attrs["nodes_truenodeids"].append(0 if leaf else int(left[node]))
        attrs["nodes_falsenodeids"].append(0 if leaf else int(right[node]))
        if leaf:
            attrs["target_treeids"].append(t)
            attrs["target_nodeids"].append(node)
            attrs["target_ids"].append(0)
            attrs["target_weights"].append(float(leaf_value[node]))


def _average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the average path length of an unsuccessful search in a binary
    search tree of n nodes (Liu et al. 2008), as scikit-learn computes it."""
    out = np.zeros(len(n))
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _float32_at_most(threshold: float) -> float:
    """The largest float32 <= threshold: for float32 inputs, x <= it exactly
    when x <= threshold, as scikit-learn compares (float32 x, float64 threshold)."""
    t = np.float32(threshold)
    return float(np.nextafter(t, np.float32(-np.inf)) if t > threshold else t)
