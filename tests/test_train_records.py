"""Training on our own records: ``sensor replay`` output joined with a
labels file (the traffic lab's format, or one label a line) feeds the same
training as the KDD files, deterministically, into models that keep the
ONNX contract."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, SHARED
from sensor.datasets import DatasetError, load_kdd, load_records
from sensor.models.modelset import MODEL_FILES
from sensor.models.schema import Meta
from sensor.models.scorer import load_model
from sensor.training.train import TrainingData, TrainSettings, export_models, fit

CAPTURE = SHARED / "pcaps" / "zeek__ftp-bruteforce.pcap"
SMALL_TRAIN = SHARED / "datasets" / "nsl-kdd" / "KDDTrain+_20Percent.txt.gz"
FAST = TrainSettings(trees=5, autoencoder_epochs=4, isolation_trees=20, isolation_samples=2048)


def _replay(*args: str) -> None:
    out = subprocess.run([sys.executable, "-m", "sensor", "replay", str(CAPTURE), "--no-alerts", "-q", *args],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """The brute-force capture's records, JSONL and KDD CSV, with labels
    for both: a lab phase over the attacker's connections, and one label a line."""
    d = tmp_path_factory.mktemp("own")
    _replay("-o", str(d / "records.jsonl"))
    _replay("-o", str(d / "records.kdd"), "--format", "kdd")
    records = [json.loads(line) for line in (d / "records.jsonl").read_text().splitlines()]
    first, last = records[0]["ts"], records[-1]["ts"]
    # the first ten connections are "normal use", the rest the brute force
    split = records[10]["ts"]
    phases = [
        {"phase": "use", "label": "normal", "category": "normal", "start": first - 1, "end": split - 3,
         "parties": ["192.168.56.1", "192.168.56.101"]},
        {"phase": "guess", "label": "guess_passwd", "category": "r2l", "start": split, "end": last,
         "parties": ["192.168.56.1", "192.168.56.101"]},
    ]
    (d / "labels.jsonl").write_text("".join(json.dumps(p) + "\n" for p in phases))
    (d / "records.labels").write_text("".join(("normal" if r["ts"] < split else "guess_passwd") + "\n"
                                              for r in records))
    return d


def test_jsonl_records_carry_the_same_features_as_the_kdd_format(own):
    from_jsonl, _ = load_records(own / "records.jsonl")
    from_kdd = load_kdd(own / "records.kdd").features
    assert len(from_jsonl) == len(from_kdd) == 30
    assert from_jsonl.tobytes() == from_kdd.tobytes()


def test_records_join_their_labels_in_either_format(own):
    phases = TrainingData.load([], [(own / "records.jsonl", own / "labels.jsonl")])
    per_line = TrainingData.load([], [(own / "records.kdd", own / "records.labels")])
    assert list(phases.labels) == list(per_line.labels)
    assert 0 < (phases.labels == "guess_passwd").sum() < len(phases.labels)
    assert phases.sources[0]["labels"] == "labels.jsonl" and len(phases.sources[0]["labels_sha256"]) == 64


def test_models_trained_with_our_records_are_deterministic_and_keep_the_contract(own, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795392000")
    data = TrainingData.load([SMALL_TRAIN], [(own / "records.jsonl", own / "labels.jsonl")])
    assert len(data.features) == len(load_kdd(SMALL_TRAIN).features) + 30
    for name in ("a", "b"):
        export_models(fit(data, FAST), data, tmp_path / name)
    for kind, filename in MODEL_FILES.items():
        assert (tmp_path / "a" / filename).read_bytes() == (tmp_path / "b" / filename).read_bytes(), filename
        model = load_model(tmp_path / "a" / filename)   # the contract checks of the models issue
        assert model.kind == kind
    meta = load_model(tmp_path / "a" / MODEL_FILES["classifier"]).metadata
    assert meta[Meta.TRAINING_DATA].split(",") == ["KDDTrain+_20Percent.txt.gz", "records.jsonl"]


def test_a_label_count_that_does_not_match_is_an_error(own, tmp_path):
    short = tmp_path / "short.labels"
    short.write_text("normal\n" * 3)
    with pytest.raises(DatasetError, match="3 labels for 30 rows"):
        TrainingData.load([], [(own / "records.kdd", short)])


def test_train_without_data_says_what_to_give():
    out = subprocess.run([sys.executable, "-m", "sensor", "train"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "--records RECORDS LABELS" in out.stderr


def test_the_kdd_lab_set_keeps_the_contract_and_its_lab_data_is_reproducible(tmp_path):
    """models/kdd-lab was trained on the KDD files and lab run 2's records;
    replaying the run's capture (fixtures/lab/run-2) gives those records
    byte for byte, so the set's data is named, pinned and reproducible."""
    from sensor.datasets import file_sha256
    from sensor.models.modelset import ModelSet

    models = ModelSet.load(ROOT / "models" / "kdd-lab")
    names = models.classifier.metadata[Meta.TRAINING_DATA].split(",")
    digests = dict(zip(names, models.classifier.metadata[Meta.TRAINING_SHA256].split(","), strict=True))
    assert names == ["kddcup.data_10_percent.gz", "KDDTrain+.txt.gz", "lab-run-2.records.jsonl"]
    records = tmp_path / "lab-run-2.records.jsonl"
    out = subprocess.run([sys.executable, "-m", "sensor", "replay", str(ROOT / "fixtures" / "lab" / "run-2" / "capture.pcap.gz"),
                          "--no-alerts", "-q", "-o", str(records)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert file_sha256(records) == digests["lab-run-2.records.jsonl"]
    for kind in ("autoencoder", "isolation_forest"):
        assert getattr(models, kind).metadata[Meta.TRAINING_DATA] == models.classifier.metadata[Meta.TRAINING_DATA]
