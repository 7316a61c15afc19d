"""``sensor train``: fit the three models on KDD-format data and export them.

Splits are by *distinct* feature vector (the KDD files repeat rows by the
thousand; a split by row would hold out copies of training rows and
flatter every validation figure), seeded, so a fixed seed gives the same
models byte for byte.

- classifier: an extra-trees ensemble over the five categories; its
  validation figures come from a fit on 80% of the distinct vectors,
  scored on the other 20%; the shipped model is then refitted on all rows.
- autoencoder and isolation forest: fitted on 80% of the normal vectors;
  the other 20% (never seen in fitting) calibrate the threshold, the score
  exceeded by ``false_positive_rate`` of them.  No test data is involved.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from sensor import __version__
from sensor._logging import get_logger
from sensor.datasets import file_sha256, is_records, load_kdd, load_records, load_row_labels
from sensor.evaluation.metrics import NORMAL
from sensor.features.kdd import KDD_DTYPE
from sensor.models.categories import CATEGORIES, categories_of
from sensor.models.modelset import MODEL_FILES
from sensor.models.schema import FEATURES, SCHEMA_VERSION, Meta
from sensor.training import export
from sensor.training.preprocess import Preprocessor

log = get_logger("sensor.train")


@dataclass(frozen=True)
class TrainSettings:
    seed: int = 0
    classifier: str = "extra_trees"          # or "random_forest"; see models/README.md for the choice
    trees: int = 20
    autoencoder_layers: tuple[int, ...] = (64, 32, 10, 32, 64)
    autoencoder_epochs: int = 80
    clip: float = 10.0                       # anomaly models' input clip, in standard deviations
    isolation_trees: int = 100
    isolation_samples: int = 8192            # rows per tree: 256 (the default) never isolates smurf
    false_positive_rate: float = 0.02
    folds: int = 5                           # 1 of this many distinct-vector folds is held out
    jobs: int = 2


@dataclass
class TrainingData:
    features: np.ndarray
    category: np.ndarray                     # index into CATEGORIES
    labels: np.ndarray
    sources: list[dict] = field(default_factory=list)   # name, sha256, rows

    @classmethod
    def load(cls, paths: list[str | Path], records: list[tuple[str | Path, str | Path]] = ()) -> "TrainingData":
        """Labelled KDD-format files, and (records, labels) pairs: the
        records of ``sensor replay`` (JSONL, joined with a traffic-lab
        labels file; or ``--format kdd``, with one label a line)."""
        features, labels, sources = [], [], []
        for path in paths:
            data = load_kdd(path)
            if (data.labels == "").any():
                raise ValueError(f"{path}: training data needs labels; this file has only the 41 features")
            features.append(data.features)
            labels.append(data.labels)
            sources.append({"name": Path(path).name, "sha256": file_sha256(path), "rows": len(data.features)})
        for record_path, label_path in records:
            rows, row_labels = _labelled_records(Path(record_path), Path(label_path))
            features.append(rows)
            labels.append(row_labels)
            sources.append({"name": Path(record_path).name, "sha256": file_sha256(record_path), "rows": len(rows),
                            "labels": Path(label_path).name, "labels_sha256": file_sha256(label_path)})
        all_labels = np.concatenate(labels) if labels else np.array([], dtype=str)
        return cls(
            features=np.concatenate(features) if features else np.zeros(0, KDD_DTYPE),
            category=categories_of(all_labels),
            labels=all_labels,
            sources=sources,
        )


def _labelled_records(records: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of our own records: JSONL records with a phase
    labels file, or a ``--format kdd`` file with one label a line."""
    from sensor.labels import label_records, read_labels

    if is_records(records):
        rows, parsed = load_records(records)
        return rows, np.array([label for label, _ in label_records(parsed, read_labels(labels))], dtype=str)
    data = load_kdd(records)
    return data.features, load_row_labels(labels, len(data.features))


@dataclass
class Trained:
    """What a training run produced: the estimators and everything needed to
    export them or compute their reference outputs."""

    settings: TrainSettings
    classifier_pre: Preprocessor
    classifier: object
    anomaly_pre: Preprocessor
    autoencoder: object
    error_scale: np.ndarray
    isolation_forest: object
    thresholds: dict[str, float]
    metrics: dict[str, dict]


def vector_folds(features: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number (0 .. folds-1) of each row; rows with equal feature
    vectors always share a fold."""
    rows = np.ascontiguousarray(features).view(np.dtype((np.void, features.dtype.itemsize)))
    _, group = np.unique(rows, return_inverse=True)
    groups = int(group.max()) + 1 if len(group) else 0
    return (np.random.default_rng(seed).permutation(groups) % folds)[group.reshape(-1)]


def holdout_mask(features: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """True for the held-out fold: 1/folds of the distinct vectors."""
    return vector_folds(features, folds, seed) == 0


def fit(data: TrainingData, settings: TrainSettings) -> Trained:
    metrics: dict[str, dict] = {}
    t0 = time.monotonic()
    held = holdout_mask(data.features, settings.folds, settings.seed)

    # classifier: validate on held-out vectors, then refit on everything
    names = np.asarray(CATEGORIES)[data.category]
    trial_pre = Preprocessor().fit(data.features[~held])
    trial = classifier_for(settings).fit(trial_pre.transform(data.features[~held]), names[~held])
    metrics["classifier"] = _classifier_validation(trial, trial_pre.transform(data.features[held]), data.category[held])
    classifier_pre = Preprocessor().fit(data.features)
    classifier = classifier_for(settings).fit(classifier_pre.transform(data.features), names)
    log.info("classifier fitted", seconds=round(time.monotonic() - t0, 1), **_headline(metrics["classifier"]))

    anomaly_pre, autoencoder, error_scale, isolation_forest, thresholds = fit_anomaly(data, settings, held, metrics)
    return Trained(settings, classifier_pre, classifier, anomaly_pre, autoencoder, error_scale,
                   isolation_forest, thresholds, metrics)


def fit_anomaly(data: TrainingData, settings: TrainSettings, held: np.ndarray, metrics: dict) -> tuple:
    """The anomaly models: fitted on the normal rows outside ``held``, their
    thresholds calibrated on the held-out normal rows; their validation
    figures go into ``metrics``.  Returns (preprocessor, autoencoder,
    error scale, isolation forest, thresholds)."""
    t0 = time.monotonic()
    normal = data.category == NORMAL
    fitting, calibration = normal & ~held, normal & held
    anomaly_pre = Preprocessor(clip=settings.clip, grouped=True).fit(data.features[fitting])
    xa = anomaly_pre.transform(data.features)
    autoencoder = autoencoder_for(settings).fit(xa[fitting], xa[fitting])
    error_scale = reconstruction_scale(autoencoder, xa[fitting])
    isolation_forest = isolation_forest_for(settings).fit(xa[fitting])
    scores = {
        "autoencoder": export.reconstruction_error(autoencoder, xa, error_scale),
        "isolation_forest": (-isolation_forest.score_samples(xa)).astype(np.float32),
    }
    thresholds = {}
    for kind, score in scores.items():
        thresholds[kind] = calibrated_threshold(score[calibration], settings.false_positive_rate)
        metrics[kind] = _anomaly_validation(score, thresholds[kind], calibration, data)
        log.info(f"{kind} fitted", seconds=round(time.monotonic() - t0, 1), threshold=thresholds[kind],
                 **{k: v for k, v in metrics[kind].items() if not isinstance(v, dict)})
    return anomaly_pre, autoencoder, error_scale, isolation_forest, thresholds


def calibrated_threshold(normal_scores: np.ndarray, false_positive_rate: float) -> float:
    """The smallest threshold that at most ``false_positive_rate`` of the
    calibration normals exceed (a score equal to it is not flagged)."""
    if len(normal_scores) == 0:
        raise ValueError("no held-out normal rows to calibrate a threshold on")
    return float(np.quantile(normal_scores.astype(np.float64), 1 - false_positive_rate, method="higher"))


def export_models(trained: Trained, data: TrainingData, out_dir: str | Path) -> dict[str, Path]:
    """Write the three .onnx files; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    s = trained.settings
    common = common_metadata(data, s, "train")
    models = {
        "classifier": export.classifier_model(trained.classifier_pre, trained.classifier, common | {
            Meta.KIND: "classifier",
            Meta.CLASSES: ",".join(trained.classifier.classes_),
            Meta.DECISION: "argmax",
            Meta.METRICS: json.dumps(trained.metrics["classifier"], sort_keys=True),
            Meta.PARAMETERS: json.dumps({"estimator": s.classifier, "trees": s.trees,
                                         "preprocessing": trained.classifier_pre.parameters()}, sort_keys=True),
        }),
        **anomaly_models(trained, common),
    }
    return write_models(models, out_dir)


def anomaly_models(trained: Trained, common: dict[str, str]) -> dict:
    """The autoencoder and isolation forest as ONNX models, with their metadata."""
    s = trained.settings
    return {
        "autoencoder": export.autoencoder_model(trained.anomaly_pre, trained.autoencoder, trained.error_scale, common | {
            Meta.KIND: "autoencoder",
            **_threshold_meta(trained, "autoencoder"),
            Meta.PARAMETERS: json.dumps({"layers": list(s.autoencoder_layers), "epochs": s.autoencoder_epochs,
                                         "preprocessing": trained.anomaly_pre.parameters()}, sort_keys=True),
        }),
        "isolation_forest": export.isolation_forest_model(trained.anomaly_pre, trained.isolation_forest, common | {
            Meta.KIND: "isolation_forest",
            **_threshold_meta(trained, "isolation_forest"),
            Meta.PARAMETERS: json.dumps({"trees": s.isolation_trees, "samples_per_tree": s.isolation_samples,
                                         "preprocessing": trained.anomaly_pre.parameters()}, sort_keys=True),
        }),
    }


def write_models(models: dict, out_dir: Path) -> dict[str, Path]:
    paths = {}
    for kind, model in models.items():
        paths[kind] = out_dir / MODEL_FILES[kind]
        paths[kind].write_bytes(model.SerializeToString(deterministic=True))
    return paths


def common_metadata(data: TrainingData, settings: TrainSettings, command: str) -> dict[str, str]:
    """What every model of a run records: schema, features, the data (named
    and pinned), date, seed and producer."""
    return {
        Meta.SCHEMA: SCHEMA_VERSION,
        Meta.FEATURES: ",".join(FEATURES),
        Meta.TRAINING_DATA: ",".join(src["name"] for src in data.sources),
        Meta.TRAINING_SHA256: ",".join(src["sha256"] for src in data.sources),
        Meta.TRAINING_DATE: training_date(),
        Meta.SEED: str(settings.seed),
        Meta.PRODUCER: f"sensor {__version__} {command}",
    }


def training_date() -> str:
    """UTC date of training; SOURCE_DATE_EPOCH pins it for reproducible builds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%d")


def _threshold_meta(trained: Trained, kind: str) -> dict[str, str]:
    return {
        Meta.THRESHOLD: repr(trained.thresholds[kind]),
        Meta.THRESHOLD_RULE: (f"exceeded by {trained.settings.false_positive_rate:g} of held-out training normals"),
        Meta.METRICS: json.dumps(trained.metrics[kind], sort_keys=True),
    }


def make_classifier(kind: str, trees: int, seed: int, jobs: int):
    """A scikit-learn tree ensemble: extra_trees, random_forest, or
    gradient_boosting (``trees`` boosting rounds; compared, not shipped)."""
    from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier

    if kind == "gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=trees, random_state=seed)
    forest = {"extra_trees": ExtraTreesClassifier, "random_forest": RandomForestClassifier}[kind]
    return forest(n_estimators=trees, n_jobs=jobs, random_state=seed)


def classifier_for(s: TrainSettings):
    return make_classifier(s.classifier, s.trees, s.seed, s.jobs)


def autoencoder_for(s: TrainSettings):
    from sklearn.neural_network import MLPRegressor

    return _Quiet(MLPRegressor(
        hidden_layer_sizes=s.autoencoder_layers, activation="relu", solver="adam", alpha=1e-5,
        batch_size=256, learning_rate_init=1e-3, max_iter=s.autoencoder_epochs, tol=0.0,
        n_iter_no_change=s.autoencoder_epochs + 1, shuffle=True, random_state=s.seed,
    ))


def isolation_forest_for(s: TrainSettings):
    from sklearn.ensemble import IsolationForest

    return IsolationForest(n_estimators=s.isolation_trees, max_samples=s.isolation_samples,
                           random_state=s.seed, n_jobs=s.jobs)


class _Quiet:
    """Fits an MLP for a fixed number of epochs without the warning that it
    did not converge (a fixed budget is the point: it keeps training
    deterministic and bounded)."""

    def __init__(self, model) -> None:
        self.model = model

    def fit(self, x, y):
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return self.model.fit(x, y)


def reconstruction_scale(autoencoder, x: np.ndarray) -> np.ndarray:
    """Per-column mean squared reconstruction error on the fitting normals:
    the score weighs each column's error against its usual size."""
    diff = autoencoder.predict(x).astype(np.float32) - x
    return ((diff * diff).mean(axis=0) + np.float32(1e-4)).astype(np.float32)


def predicted_categories(model, x: np.ndarray) -> np.ndarray:
    """A fitted classifier's most probable category per row, as CATEGORIES indices."""
    codes = np.array([CATEGORIES.index(c) for c in model.classes_])
    return codes[model.predict_proba(x).argmax(axis=1)]


def _classifier_validation(model, x: np.ndarray, truth: np.ndarray) -> dict:
    from sensor.evaluation.metrics import classification_summary

    summary = classification_summary(truth, predicted_categories(model, x))
    return {"validation": "1 of 5 folds of distinct training vectors held out", **{k: summary[k] for k in (
        "accuracy", "cost_per_example", "binary_accuracy")},
        "recall": {k: round(v["recall"], 4) for k, v in summary["per_class"].items()}}


def _anomaly_validation(score: np.ndarray, threshold: float, calibration: np.ndarray, data: TrainingData) -> dict:
    from sensor.evaluation.metrics import roc_auc

    attack = data.category != NORMAL
    rows = calibration | attack
    flagged = score > threshold
    if not attack.any():   # a site's own normal traffic (sensor learn): nothing to detect, only to let pass
        return {"validation": "held-out normals of the site's own traffic",
                "false_positive_rate": float(flagged[calibration].mean()), "calibration_rows": int(calibration.sum())}
    return {
        "validation": "held-out training normals vs training attacks",
        "false_positive_rate": float(flagged[calibration].mean()),
        "roc_auc": roc_auc(attack[rows], score[rows]),
        "detection_rate": {CATEGORIES[k]: round(float(flagged[data.category == k].mean()), 4)
                           for k in range(1, len(CATEGORIES)) if (data.category == k).any()},
    }


def _headline(m: dict) -> dict:
    return {k: round(m[k], 4) for k in ("accuracy", "cost_per_example")}


def check_parity(trained: Trained, paths: dict[str, Path], features: np.ndarray, rtol: float = 1e-4) -> dict[str, float]:
    """Score ``features`` with the exported files and with the estimators;
    raise if labels differ or a score differs by more than ``rtol`` (relative).
    Returns the largest relative score difference per model."""
    from sensor.models.scorer import load_model

    worst = {}
    labels, probabilities = load_model(paths["classifier"]).predict(features)
    ref_labels, ref_probabilities = export.classifier_reference(trained.classifier_pre, trained.classifier, features)
    if not np.array_equal(labels, ref_labels.astype(str)):
        raise AssertionError(f"{paths['classifier']}: {int((labels != ref_labels).sum())} labels differ from scikit-learn's")
    worst["classifier"] = float(np.abs(probabilities - ref_probabilities).max(initial=0))
    references = {
        "autoencoder": export.autoencoder_reference(trained.anomaly_pre, trained.autoencoder, trained.error_scale, features),
        "isolation_forest": export.isolation_forest_reference(trained.anomaly_pre, trained.isolation_forest, features),
    }
    for kind, reference in references.items():
        relative = relative_difference(load_model(paths[kind]).score(features), reference)
        if relative > rtol:
            raise AssertionError(f"{paths[kind]}: scores differ from scikit-learn's by {relative:.2e} (relative)")
        worst[kind] = relative
    worst["contributions"] = _contributions_difference(trained, paths["autoencoder"], features, references["autoencoder"])
    if worst["contributions"] > rtol:
        raise AssertionError(f"{paths['autoencoder']}: contributions differ from numpy's by {worst['contributions']:.2e} of the score")
    return worst


def _contributions_difference(trained: Trained, path: Path, features: np.ndarray, score: np.ndarray) -> float:
    """Largest difference of a feature's contribution, relative to its record's score."""
    from sensor.models.scorer import load_model

    shares = load_model(path).contributions(features)
    reference = export.contributions_reference(trained.anomaly_pre, trained.autoencoder, trained.error_scale, features)
    return float((np.abs(shares - reference).max(axis=1) / np.maximum(score, 1e-12)).max(initial=0))


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float((np.abs(a - b) / np.maximum(np.abs(b), 1e-12)).max(initial=0))


def record_test_metrics(paths: dict[str, Path], evaluations: dict[str, dict]) -> None:
    """Add each test file's headline figures (from ``sensor evaluate``
    summaries, keyed by file name) to the models' metrics metadata.  Test
    figures are reported, never used to choose anything."""
    import onnx

    for kind, path in paths.items():
        model = onnx.load(path)
        props = {p.key: p.value for p in model.metadata_props}
        metrics = json.loads(props.get(Meta.METRICS, "{}"))
        metrics["test"] = {name: _test_headline(kind, s) for name, s in evaluations.items()}
        props[Meta.METRICS] = json.dumps(metrics, sort_keys=True)
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, props)
        path.write_bytes(model.SerializeToString(deterministic=True))


def _test_headline(kind: str, s: dict) -> dict:
    data = {"sha256": s["data"]["sha256"], "rows": s["data"]["rows"]}
    if kind == "classifier":
        return data | {
            "verdict_accuracy": s["accuracy"], "verdict_cost_per_example": s["cost_per_example"],
            "verdict_binary_accuracy": s["binary_accuracy"]["verdict"],
            **{k: s["classifier"][k] for k in ("accuracy", "cost_per_example", "binary_accuracy")},
        }
    return data | {k: s[kind][k] for k in ("roc_auc", "binary_accuracy", "detection_rate", "false_positive_rate")}
