"""sensor train / evaluate / model info end to end, and the metrics against scikit-learn."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics as skm

from conftest import ROOT, SHARED
from sensor.datasets import load_kdd
from sensor.evaluation.metrics import COST_MATRIX, classification_summary, roc_auc, roc_curve
from sensor.models.categories import CATEGORIES, categories_of
from sensor.models.modelset import ModelSet

DATASETS = SHARED / "datasets"
SMALL_TRAIN = DATASETS / "nsl-kdd" / "KDDTrain+_20Percent.txt.gz"
CORRECTED = DATASETS / "kddcup99" / "corrected.gz"


def sensor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sensor", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    """Every 40th row of the KDD test set plus every row of its rarest
    labels: all five categories, a few thousand rows."""
    path = tmp_path_factory.mktemp("data") / "corrected-sample.csv"
    with gzip.open(CORRECTED, "rt") as f, open(path, "w") as out:
        for i, line in enumerate(f):
            label = line.rsplit(",", 1)[1].strip()
            if i % 40 == 0 or label in ("buffer_overflow.", "rootkit.", "ps.", "xterm.", "imap.", "phf."):
                out.write(line)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory, test_file):
    out = tmp_path_factory.mktemp("models")
    result = sensor("train", "--data", str(SMALL_TRAIN), "-o", str(out), "--trees", "5", "--evaluate", str(test_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ONNX parity on 10,000 rows") == 3
    return out


# -- metrics, against scikit-learn --------------------------------------------------------


def test_classification_summary_matches_scikit_learn():
    rng = np.random.default_rng(7)
    truth = rng.choice(5, 5000, p=[0.3, 0.1, 0.4, 0.05, 0.15])
    predicted = np.where(rng.random(5000) < 0.7, truth, rng.choice(5, 5000))
    s = classification_summary(truth, predicted)
    assert s["accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert s["confusion"]["matrix"] == skm.confusion_matrix(truth, predicted, labels=range(5)).tolist()
    p, r, f, n = skm.precision_recall_fscore_support(truth, predicted, labels=range(5), zero_division=0)
    for k, c in enumerate(CATEGORIES):
        assert s["per_class"][c] == pytest.approx({"precision": p[k], "recall": r[k], "f1": f[k], "support": n[k]})
    assert s["binary_accuracy"] == pytest.approx(skm.accuracy_score(truth != 0, predicted != 0))
    cm = np.array(s["confusion"]["matrix"])
    assert s["cost_per_example"] == pytest.approx(sum(COST_MATRIX[t, q] for t, q in zip(truth, predicted)) / 5000)
    assert cm.sum() == 5000


def test_cost_matrix_is_the_kdd_cup_1999_one():
    c = {(a, b): COST_MATRIX[CATEGORIES.index(a), CATEGORIES.index(b)] for a in CATEGORIES for b in CATEGORIES}
    assert all(c[a, a] == 0 for a in CATEGORIES)
    assert c["r2l", "normal"] == 4 and c["u2r", "normal"] == 3 and c["dos", "probe"] == 1
    assert c["normal", "probe"] == 1 and c["probe", "normal"] == 1 and c["normal", "dos"] == 2


@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_matches_scikit_learn(ties):
    rng = np.random.default_rng(3)
    attack = rng.random(4000) < 0.4
    score = rng.normal(attack * 1.3, 1.0)
    if ties:
        score = np.round(score, 1)
    assert roc_auc(attack, score) == pytest.approx(skm.roc_auc_score(attack, score), abs=1e-12)
    fpr, tpr, _ = roc_curve(attack, score)
    ref_fpr, ref_tpr, _ = skm.roc_curve(attack, score, drop_intermediate=False)
    assert np.allclose(fpr, ref_fpr) and np.allclose(tpr, ref_tpr)


# -- sensor evaluate ----------------------------------------------------------------------


def test_evaluate_json_is_what_the_models_say(models, test_file, tmp_path):
    result = sensor("evaluate", "--data", str(test_file), "--models", str(models), "--json", "--report", str(tmp_path))
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout)
    for key in ("accuracy", "cost_per_example", "binary_accuracy", "roc_auc", "per_class", "confusion"):
        assert key in s
    # recompute from the models in this process, with scikit-learn's metrics
    data = load_kdd(test_file)
    truth = categories_of(data.labels)
    scores = ModelSet.load(models).score(data.features)
    verdict = np.array([CATEGORIES.index(c) for c in scores.category])
    assert s["data"]["rows"] == len(truth) == np.sum(s["confusion"]["matrix"])
    assert s["accuracy"] == pytest.approx(skm.accuracy_score(truth, verdict))
    assert s["confusion"]["matrix"] == skm.confusion_matrix(truth, verdict, labels=range(5)).tolist()
    assert s["binary_accuracy"]["classifier"] == pytest.approx(np.mean((truth != 0) == (scores.label != "normal")))
    for kind in ("autoencoder", "isolation_forest"):
        assert s["roc_auc"][kind] == pytest.approx(skm.roc_auc_score(truth != 0, scores.anomaly[kind]))
    assert sum(e["rows"] for e in s["by_attack"].values()) == len(truth)
    assert s["data"]["categories"]["u2r"] > 0 and all(n > 0 for n in s["data"]["categories"].values())


def test_evaluate_writes_a_markdown_report_with_plots(models, test_file, tmp_path):
    result = sensor("evaluate", "--data", str(test_file), "--models", str(models), "--report", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "| verdict (classifier + autoencoder gate) |" in result.stdout
    report = (tmp_path / "report.md").read_text()
    images = [line[line.index("(") + 1:-1] for line in report.splitlines() if line.startswith("![")]
    assert {"roc.png", "confusion-verdict.png", "scores-autoencoder.png"} <= set(images)
    for name in images:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| buffer_overflow | u2r |" in report


def test_one_nearest_neighbour_baseline_knows_its_own_training_rows(models):
    """1-NN scored on the file it was fitted on gets every row right
    except those whose vector also carries another label."""
    result = sensor("evaluate", "--data", str(SMALL_TRAIN), "--models", str(models), "--json",
                    "--baselines", str(SMALL_TRAIN))
    assert result.returncode == 0, result.stderr
    baselines = json.loads(result.stdout)["baselines"]
    assert baselines["1-NN"]["accuracy"] > 0.999
    forest = baselines["isolation_forest_10"]
    assert 0.5 < forest["roc_auc"] <= 1 and forest["false_positive_rate"] < 0.05


@pytest.mark.parametrize("case", ["unlabelled", "unknown label", "no models", "not a csv"])
def test_evaluate_refuses_bad_input_with_a_clear_error(models, tmp_path, case):
    data = tmp_path / "data.csv"
    row = "0,tcp,http,SF,181,5450" + ",0" * 35
    data.write_text({"unlabelled": row + "\n", "unknown label": row + ",ucpstorm.\n", "no models": row + ",normal.\n",
                     "not a csv": "\x00\x01\x02 binary\n"}[case])
    model_dir = tmp_path / "empty" if case == "no models" else models
    result = sensor("evaluate", "--data", str(data), "--models", str(model_dir))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    expected = {"unlabelled": "no labels", "unknown label": "ucpstorm", "no models": "no classifier.onnx",
                "not a csv": str(data)}[case]
    assert expected in result.stderr


# -- sensor train / model info ----------------------------------------------------------------


def test_model_info_shows_the_metadata(models, test_file):
    text = sensor("model", "info", str(models / "autoencoder.onnx"))
    assert text.returncode == 0, text.stderr
    assert "kind             autoencoder" in text.stdout and "threshold" in text.stdout
    info = json.loads(sensor("model", "info", str(models / "classifier.onnx"), "--json").stdout)
    meta = info["metadata"]
    assert meta["kind"] == "classifier" and meta["training_data"] == SMALL_TRAIN.name
    assert test_file.name in meta["metrics"]["test"] and 0 < meta["metrics"]["test"][test_file.name]["verdict_accuracy"] <= 1
    assert len(info["inputs"]) == 41 and info["outputs"][0]["name"] == "label"


def test_train_refuses_a_file_without_labels(tmp_path):
    data = tmp_path / "unlabelled.csv"
    data.write_text("0,tcp,http,SF,181,5450" + ",0" * 35 + "\n")
    result = sensor("train", "--data", str(data), "-o", str(tmp_path / "out"))
    assert result.returncode == 1 and "needs labels" in result.stderr
    assert not (tmp_path / "out").exists()


def test_compare_reports_every_candidate_and_survives_a_failed_export():
    from sensor.training.selection import compare
    from sensor.training.train import TrainingData

    data = TrainingData.load([SMALL_TRAIN])
    rows = compare(data, candidates=(("random_forest", 5), ("extra_trees", 5), ("gradient_boosting", 5)), folds=3)
    assert [(r.estimator, r.trees) for r in rows] == [("random_forest", 5), ("extra_trees", 5), ("gradient_boosting", 5)]
    for r in rows:
        assert 0.9 < r.accuracy <= 1 and set(r.recall) == set(CATEGORIES)
        assert (r.records_per_second or 0) > 0 or r.note.startswith("export failed")
    assert rows[0].records_per_second and rows[1].records_per_second
