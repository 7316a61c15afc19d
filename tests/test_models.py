"""Models: the ONNX contract, parity with scikit-learn, determinism, bad files.

A small model set is trained here (NSL-KDD's 20% training file, fewer
epochs) so parity can be checked against the estimators themselves; the
shipped set in models/ is checked against the contract with a plain
onnxruntime client that knows nothing of our code.
"""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import FIXTURES, ROOT, SHARED
from sensor.datasets import file_sha256, load_kdd
from sensor.features.kdd import KDD_FEATURES
from sensor.models.categories import CATEGORIES, CATEGORY_OF, TEST_ONLY_ATTACKS, UnknownLabelError, categories_of
from sensor.models.modelset import MODEL_FILES, ModelSet
from sensor.models.schema import SCHEMA_VERSION, STRING_INPUTS, Meta
from sensor.models.scorer import ModelError, load_model
from sensor.training import export
from sensor.training.train import TrainingData, TrainSettings, export_models, fit, relative_difference

DATASETS = SHARED / "datasets"
SMALL_TRAIN = DATASETS / "nsl-kdd" / "KDDTrain+_20Percent.txt.gz"
CORRECTED = DATASETS / "kddcup99" / "corrected.gz"
SHIPPED = ROOT / "models"
FAST = TrainSettings(trees=10, autoencoder_epochs=8, isolation_trees=50, isolation_samples=4096)


@pytest.fixture(scope="module")
def small_data():
    return TrainingData.load([SMALL_TRAIN])


@pytest.fixture(scope="module")
def trained(small_data):
    return fit(small_data, FAST)


@pytest.fixture(scope="module")
def small_models(trained, small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    export_models(trained, small_data, out)
    return out


@pytest.fixture(scope="module")
def test_rows():
    """10,000 rows of the KDD test set (never trained on), every row with a
    service our tables lack ('icmp') among them."""
    rows = load_kdd(CORRECTED).features
    unknown = np.flatnonzero(rows["service"] == 255)
    assert len(unknown) > 0
    others = np.flatnonzero(rows["service"] != 255)
    spread = others[np.linspace(0, len(others) - 1, 10_000 - len(unknown)).astype(int)]
    return rows[np.concatenate([unknown, spread])]


# -- parity with scikit-learn ----------------------------------------------------------


def test_classifier_onnx_labels_equal_scikit_learn(trained, small_models, test_rows):
    labels, probabilities = load_model(small_models / "classifier.onnx").predict(test_rows)
    ref_labels, ref_probabilities = export.classifier_reference(trained.classifier_pre, trained.classifier, test_rows)
    assert len(test_rows) == 10_000
    assert np.array_equal(labels, ref_labels.astype(str))
    assert np.abs(probabilities - ref_probabilities).max() <= 1e-5
    assert len(set(labels)) >= 3  # a parity check on one class would prove little


@pytest.mark.parametrize("kind", ["autoencoder", "isolation_forest"])
def test_anomaly_onnx_scores_equal_scikit_learn(trained, small_models, test_rows, kind):
    score = load_model(small_models / f"{kind}.onnx").score(test_rows)
    if kind == "autoencoder":
        reference = export.autoencoder_reference(trained.anomaly_pre, trained.autoencoder, trained.error_scale, test_rows)
    else:
        reference = export.isolation_forest_reference(trained.anomaly_pre, trained.isolation_forest, test_rows)
    assert relative_difference(score, reference) <= 1e-4
    assert np.std(reference) > 0


def test_autoencoder_contributions_name_the_unusual_features_and_add_up_to_the_score(trained, small_models, test_rows):
    model = load_model(small_models / "autoencoder.onnx")
    shares, score = model.contributions(test_rows), model.score(test_rows)
    reference = export.contributions_reference(trained.anomaly_pre, trained.autoencoder, trained.error_scale, test_rows)
    assert shares.shape == (len(test_rows), len(KDD_FEATURES))
    assert np.abs(shares - reference).max(axis=1).max() <= 1e-4 * max(float(score.max()), 1.0)
    assert np.allclose(shares.sum(axis=1), score, rtol=1e-4, atol=1e-6)
    # a record made unusual in one feature only: that feature leads
    row = test_rows[np.argmin(score)].copy()
    row["src_bytes"] = 10**9
    top = np.argsort(model.contributions(row.reshape(1)))[0][::-1]
    assert KDD_FEATURES[top[0]] == "src_bytes"


def test_preprocessing_in_the_graph_matches_numpy(trained):
    """The anomaly models' preprocessing (log, standardising, clip, group
    statistics, one-hot) node by node against Preprocessor.transform, on
    crafted rows: unknown service and protocol codes, huge counts, zeros."""
    from sensor.training.onnx_graph import GraphBuilder, float_output

    pre = trained.anomaly_pre
    rows = np.zeros(6, dtype=load_kdd(SMALL_TRAIN).features.dtype)
    rows["service"] = [0, 255, 5, 3, 0, 1]
    rows["protocol_type"] = [0, 1, 2, 255, 1, 0]
    rows["flag"] = [0, 1, 255, 3, 10, 0]
    rows["src_bytes"] = [0, 1, 10**9, 45, 105, 2**40]
    rows["count"] = [1, 511, 0, 3, 2, 100]
    rows["dst_host_same_srv_rate"] = [0, 0.5, 1, 0.25, 0.01, 0.99]
    g = GraphBuilder()
    g.node("Identity", [pre.emit(g)], output="x")
    session = ort.InferenceSession(g.build([float_output("x", "N", pre.width)], {}, "").SerializeToString())
    from sensor.models.scorer import feeds

    got = session.run(None, feeds(rows))[0]
    assert got.shape == (6, pre.width)
    np.testing.assert_allclose(got, pre.transform(rows), rtol=1e-5, atol=1e-5)


# -- determinism -------------------------------------------------------------------------


def test_training_is_deterministic_for_a_fixed_seed(small_data, small_models, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795392000")
    export_models(fit(small_data, FAST), small_data, tmp_path / "a")
    export_models(fit(small_data, FAST), small_data, tmp_path / "b")
    other = TrainSettings(**{**FAST.__dict__, "seed": 1})
    export_models(fit(small_data, other), small_data, tmp_path / "c")
    for filename in MODEL_FILES.values():
        assert (tmp_path / "a" / filename).read_bytes() == (tmp_path / "b" / filename).read_bytes(), filename
        assert (tmp_path / "a" / filename).read_bytes() != (tmp_path / "c" / filename).read_bytes(), filename


# -- the contract, with a plain onnxruntime client -------------------------------------------


@pytest.mark.parametrize("kind", list(MODEL_FILES))
def test_shipped_model_follows_the_contract(kind):
    session = ort.InferenceSession(str(SHIPPED / MODEL_FILES[kind]), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    assert [i.name for i in inputs] == list(KDD_FEATURES)
    for i in inputs:
        assert i.type == ("tensor(string)" if i.name in STRING_INPUTS else "tensor(float)"), i.name
        assert len(i.shape) == 2 and i.shape[1] == 1
    meta = session.get_modelmeta().custom_metadata_map
    assert meta[Meta.KIND] == kind and meta[Meta.SCHEMA] == SCHEMA_VERSION
    assert meta[Meta.FEATURES].split(",") == list(KDD_FEATURES)
    outputs = {o.name: o.type for o in session.get_outputs()}
    if kind == "classifier":
        assert outputs == {"label": "tensor(string)", "probabilities": "tensor(float)"}
        assert sorted(meta[Meta.CLASSES].split(",")) == sorted(CATEGORIES)
    elif kind == "autoencoder":
        assert outputs == {"score": "tensor(float)", "contributions": "tensor(float)"}
        assert float(meta[Meta.THRESHOLD]) > 0
    else:
        assert outputs == {"score": "tensor(float)"}
        assert float(meta[Meta.THRESHOLD]) > 0
    # the data it was trained on, named and pinned
    names = meta[Meta.TRAINING_DATA].split(",")
    digests = meta[Meta.TRAINING_SHA256].split(",")
    for name, digest in zip(names, digests, strict=True):
        (path,) = DATASETS.glob(f"*/{name}")
        assert file_sha256(path) == digest
    metrics = json.loads(meta[Meta.METRICS])
    assert "validation" in metrics and set(metrics["test"]) == {"corrected.gz", "KDDTest+.txt.gz"}


def test_a_plain_onnxruntime_client_scores_raw_kdd_rows_as_the_sensor_does():
    """Feed the CSV text of KDD rows straight into onnxruntime, strings
    as they stand in the file (including services our tables do not
    have), and compare with the sensor's scorer on the loaded rows."""
    with gzip.open(CORRECTED, "rt") as f:
        picked = [(i, r) for i, r in enumerate(csv.reader(f)) if i % 50 == 0 or r[2] == "icmp"]
    raw = [r for _, r in picked]
    assert sum(r[2] == "icmp" for r in raw) == 2
    feeds = {
        name: (np.array([[r[j]] for r in raw], dtype=object) if name in STRING_INPUTS
               else np.array([[float(r[j])] for r in raw], dtype=np.float32))
        for j, name in enumerate(KDD_FEATURES)
    }
    ours = ModelSet.load(SHIPPED)
    scores = ours.score(load_kdd(CORRECTED).features[[i for i, _ in picked]])
    plain = ort.InferenceSession(str(SHIPPED / "classifier.onnx"), providers=["CPUExecutionProvider"])
    label, probabilities = plain.run(None, feeds)
    assert np.array_equal(np.asarray(label).astype(str), scores.label)
    np.testing.assert_allclose(probabilities, scores.probabilities, rtol=1e-6)
    for kind in ("autoencoder", "isolation_forest"):
        session = ort.InferenceSession(str(SHIPPED / MODEL_FILES[kind]), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, feeds)[0], scores.anomaly[kind], rtol=1e-5)


def test_verdict_sends_normal_looking_outliers_to_the_likeliest_attack(small_models, test_rows):
    models = ModelSet.load(small_models)
    s = models.score(test_rows)
    flagged = s.flagged["autoencoder"]
    assert s.novel.any() and ((s.label == "normal") & ~flagged).any()
    assert np.array_equal(s.novel, (s.label == "normal") & flagged)
    assert np.array_equal(s.category[~s.novel], s.label[~s.novel])
    classes = list(models.classifier.classes)
    attack = [i for i, c in enumerate(classes) if c != "normal"]
    expected = np.asarray(classes)[attack][s.probabilities[s.novel][:, attack].argmax(axis=1)]
    assert np.array_equal(s.category[s.novel], expected)


# -- bad and mismatched model files ------------------------------------------------------------


def _edited(tmp_path: Path, kind: str, edit) -> Path:
    model = onnx.load(SHIPPED / MODEL_FILES[kind])
    edit(model)
    path = tmp_path / MODEL_FILES[kind]
    path.write_bytes(model.SerializeToString())
    return path


def _set_meta(key, value):
    def edit(model):
        props = {p.key: p.value for p in model.metadata_props}
        if value is None:
            props.pop(key)
        else:
            props[key] = value
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, props)
    return edit


def _rename_input(old, new):
    def edit(model):
        for i in model.graph.input:
            if i.name == old:
                i.name = new
        for node in model.graph.node:
            node.input[:] = [new if n == old else n for n in node.input]
    return edit


def _input_as_double(name):
    """Declare the input double and cast it inside: a valid graph that breaks the contract."""
    def edit(model):
        for i in model.graph.input:
            if i.name == name:
                i.type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
        for node in model.graph.node:
            node.input[:] = [f"{name}_as_float" if n == name else n for n in node.input]
        model.graph.node.insert(0, onnx.helper.make_node("Cast", [name], [f"{name}_as_float"], to=onnx.TensorProto.FLOAT))
    return edit


def _both(*edits):
    def edit(model):
        for e in edits:
            e(model)
    return edit


@pytest.mark.parametrize(
    "kind, edit, message",
    [
        ("classifier", _set_meta(Meta.SCHEMA, "kdd99-41/0"), "trained on feature schema 'kdd99-41/0'"),
        ("classifier", _set_meta(Meta.FEATURES, ",".join(KDD_FEATURES[:-1])), "missing dst_host_srv_rerror_rate"),
        ("classifier", _set_meta(Meta.FEATURES, ",".join(reversed(KDD_FEATURES))), "order differs"),
        ("classifier", _set_meta(Meta.CLASSES, "normal,attack,dos,probe,r2l"), "are not KDD categories"),
        ("classifier", _set_meta(Meta.KIND, None), "metadata kind is ''"),
        ("autoencoder", _set_meta(Meta.THRESHOLD, "high"), "threshold 'high' is not a number"),
        ("autoencoder", _set_meta(Meta.THRESHOLD, "nan"), "is not finite"),
        ("isolation_forest", _set_meta(Meta.THRESHOLD, None), "metadata lacks threshold"),
        ("autoencoder", _rename_input("src_bytes", "bytes_out"), "inputs the sensor does not have: bytes_out"),
        ("autoencoder", _input_as_double("duration"), "input 'duration' is tensor(double)"),
        ("classifier", _both(_set_meta(Meta.KIND, "autoencoder"), _set_meta(Meta.THRESHOLD, "1.5")), "must output score"),
    ],
)
def test_mismatched_model_is_refused_with_file_and_reason(tmp_path, kind, edit, message):
    path = _edited(tmp_path, kind, edit)
    with pytest.raises(ModelError) as err:
        load_model(path)
    assert str(path) in str(err.value) and message in str(err.value)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "missing"])
def test_corrupt_model_file_is_refused_with_file_and_reason(tmp_path, damage):
    path = tmp_path / "classifier.onnx"
    blob = (SHIPPED / "classifier.onnx").read_bytes()
    content = {"truncated": blob[: len(blob) // 2], "garbage": b"\x08\x07not a protobuf" * 50, "empty": b""}
    if damage != "missing":
        path.write_bytes(content[damage])
    with pytest.raises(ModelError) as err:
        load_model(path)
    assert str(path) in str(err.value)
    assert ("cannot read" if damage == "missing" else "not a usable ONNX model") in str(err.value)
    result = subprocess.run([sys.executable, "-m", "sensor", "model", "info", str(path)], capture_output=True, text=True)
    assert result.returncode == 1 and str(path) in result.stderr and "Traceback" not in result.stderr


def test_model_set_refuses_a_model_under_another_kinds_name(tmp_path):
    (tmp_path / "classifier.onnx").write_bytes((SHIPPED / "classifier.onnx").read_bytes())
    (tmp_path / "autoencoder.onnx").write_bytes((SHIPPED / "isolation_forest.onnx").read_bytes())
    with pytest.raises(ModelError, match="metadata says isolation_forest, the file name says autoencoder"):
        ModelSet.load(tmp_path)


# -- running without the training stack --------------------------------------------------------

BLOCKED = ("sklearn", "skl2onnx", "onnx", "matplotlib", "pandas", "scipy")
_NO_TRAINING_STACK = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED!r}:
            raise ImportError(f'blocked: {{name}}', name=name)
sys.meta_path.insert(0, Block())
"""


def test_sensor_replays_and_scores_without_the_training_stack():
    """Packets to features to scores, with scikit-learn and friends
    unimportable: the running sensor needs numpy and onnxruntime only."""
    script = _NO_TRAINING_STACK + f"""
import json
import numpy as np
from sensor.config import SensorConfig
from sensor.models.modelset import ModelSet
from sensor.replay import replay
rows = []
class Keep:
    def write(self, conns, features): rows.append(features.copy())
    def close(self): pass
replay([{str(FIXTURES / "ftp-bruteforce.pcap")!r}], SensorConfig(), [Keep()])
features = np.concatenate(rows)
scores = ModelSet.load({str(SHIPPED)!r}).score(features)
loaded = [m for m in sys.modules if m.split('.')[0] in {BLOCKED!r}]
print(json.dumps({{"records": len(features), "categories": scores.category.tolist(),
                  "scores": scores.anomaly["autoencoder"].tolist(), "loaded": loaded}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["loaded"] == []
    assert out["records"] == len(out["categories"]) == len(out["scores"]) == 30
    assert set(out["categories"]) <= set(CATEGORIES)
    assert all(np.isfinite(out["scores"]))


def test_train_without_the_training_stack_says_what_to_install(tmp_path):
    script = _NO_TRAINING_STACK + f"""
from sensor.cli import main
raise SystemExit(main(['train', '--data', {str(SMALL_TRAIN)!r}, '-o', {str(tmp_path)!r}]))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert "pip install 'sensor[train]'" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


# -- categories -----------------------------------------------------------------------------------


def test_label_read_from_probabilities_is_the_graphs_own_label_ties_included():
    """The scorer reads the label as the first likeliest class rather than
    asking onnxruntime for its string output; over a whole test file the
    two agree, including the records whose top probabilities tie."""
    rows = load_kdd(DATASETS / "nsl-kdd" / "KDDTest+.txt.gz").features
    classifier = load_model(SHIPPED / "classifier.onnx")
    graph_label, probabilities = classifier.run(rows)
    labels, ours = classifier.predict(rows)
    top_two = np.sort(probabilities, axis=1)[:, -2:]
    assert (top_two[:, 0] == top_two[:, 1]).sum() >= 50   # ties are there to be broken
    assert np.array_equal(labels, np.asarray(graph_label).reshape(-1).astype(str))
    np.testing.assert_array_equal(ours, probabilities)


def test_every_label_in_the_shared_datasets_has_a_category():
    for path in sorted(DATASETS.glob("*/*.gz")):
        labels = load_kdd(path).labels
        codes = categories_of(labels)
        assert len(codes) == len(labels) and codes.min() >= 0, path


def test_test_only_attacks_are_exactly_those_absent_from_training():
    training = set(load_kdd(DATASETS / "kddcup99" / "kddcup.data_10_percent.gz").labels) | set(
        load_kdd(DATASETS / "nsl-kdd" / "KDDTrain+.txt.gz").labels)
    testing = set(load_kdd(CORRECTED).labels) | set(load_kdd(DATASETS / "nsl-kdd" / "KDDTest+.txt.gz").labels)
    assert TEST_ONLY_ATTACKS == testing - training
    assert set(CATEGORY_OF) == training | testing


def test_unknown_label_is_an_error_naming_it():
    with pytest.raises(UnknownLabelError, match="tepreset, ucpstorm"):
        categories_of(np.array(["normal.", "ucpstorm.", "smurf", "tepreset"]))
