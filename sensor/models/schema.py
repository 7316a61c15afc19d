"""The model contract: what every shipped ``.onnx`` takes, gives and declares.

Inputs: one per KDD feature, named as in ``kddcup.names``, shape [N, 1];
float32, except protocol_type, service and flag, which are strings.  Any
onnxruntime client can therefore score a KDD row without our code.
Outputs: ``label`` (string) and ``probabilities`` (float32 [N, classes])
for the classifier; ``score`` (float32 [N], higher = more anomalous) for
the anomaly models.  ``metadata_props`` carry the keys below.

The schema version changes whenever a feature's definition or encoding
changes in a way that would make an older model's scores wrong; a model
declaring another version is refused at load.
"""

from __future__ import annotations

from sensor.features.kdd import KDD_FEATURES, SYMBOLIC

#: Version of the feature definitions models are trained against.
SCHEMA_VERSION = "kdd99-41/1"
#: Model kinds, and the outputs each must have.
OUTPUTS: dict[str, tuple[str, ...]] = {
    "classifier": ("label", "probabilities"),
    "autoencoder": ("score",),
    "isolation_forest": ("score",),
}
ANOMALY_KINDS = ("autoencoder", "isolation_forest")
STRING_INPUTS: frozenset[str] = frozenset(SYMBOLIC)


class Meta:
    """metadata_props keys."""

    KIND = "kind"
    SCHEMA = "feature_schema"
    FEATURES = "features"            # comma-separated, in input order
    CLASSES = "classes"              # comma-separated, probabilities column order
    DECISION = "decision"            # how label follows from probabilities
    THRESHOLD = "threshold"          # anomaly models: score above = anomalous
    THRESHOLD_RULE = "threshold_rule"
    TRAINING_DATA = "training_data"
    TRAINING_SHA256 = "training_sha256"
    TRAINING_DATE = "training_date"
    METRICS = "metrics"              # JSON: validation figures on training data
    PARAMETERS = "parameters"        # JSON: estimator and preprocessing settings
    SEED = "seed"
    PRODUCER = "producer"


REQUIRED_META: dict[str, tuple[str, ...]] = {
    "classifier": (Meta.KIND, Meta.SCHEMA, Meta.FEATURES, Meta.CLASSES, Meta.DECISION),
    "autoencoder": (Meta.KIND, Meta.SCHEMA, Meta.FEATURES, Meta.THRESHOLD),
    "isolation_forest": (Meta.KIND, Meta.SCHEMA, Meta.FEATURES, Meta.THRESHOLD),
}


def input_type(feature: str) -> str:
    """The ONNX tensor element type of a feature's input."""
    return "string" if feature in STRING_INPUTS else "float"


FEATURES: tuple[str, ...] = KDD_FEATURES
