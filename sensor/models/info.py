"""``sensor model info``: what a model file declares, for a person or a script."""

from __future__ import annotations

import json

from sensor.datasets import file_sha256
from sensor.models.schema import Meta
from sensor.models.scorer import OnnxModel

_JSON_KEYS = (Meta.METRICS, Meta.PARAMETERS)


def model_info(model: OnnxModel) -> dict:
    """Metadata (JSON values decoded), inputs, outputs, file size and digest."""
    meta = {k: (json.loads(v) if k in _JSON_KEYS else v) for k, v in sorted(model.metadata.items())}
    if Meta.FEATURES in meta:
        meta[Meta.FEATURES] = meta[Meta.FEATURES].split(",")
    return {
        "file": str(model.path),
        "bytes": model.path.stat().st_size,
        "sha256": file_sha256(model.path),
        "metadata": meta,
        "inputs": [{"name": i.name, "type": i.type, "shape": [str(d) for d in i.shape]} for i in model.session.get_inputs()],
        "outputs": [{"name": o.name, "type": o.type, "shape": [str(d) for d in o.shape]} for o in model.session.get_outputs()],
    }


def info_text(info: dict) -> str:
    meta = info["metadata"]
    lines = [f"{info['file']}  ({info['bytes']:,} bytes, sha256 {info['sha256']})"]
    for key in (Meta.KIND, Meta.SCHEMA, Meta.CLASSES, Meta.DECISION, Meta.THRESHOLD, Meta.THRESHOLD_RULE,
                Meta.TRAINING_DATA, Meta.TRAINING_SHA256, Meta.TRAINING_DATE, Meta.SEED, Meta.PRODUCER):
        if key in meta:
            lines.append(f"  {key:16} {meta[key]}")
    features = meta.get(Meta.FEATURES, [])
    strings = [i["name"] for i in info["inputs"] if i["type"] == "tensor(string)"]
    lines.append(f"  {'inputs':16} {len(info['inputs'])} named [N, 1] tensors ({len(features)} features; strings: {', '.join(strings)})")
    lines.append(f"  {'outputs':16} " + ", ".join(f"{o['name']} {o['type']} [{', '.join(o['shape'])}]" for o in info["outputs"]))
    for key in (Meta.PARAMETERS, Meta.METRICS):
        if isinstance(meta.get(key), dict):
            lines.append(f"  {key}:")
            lines += [f"    {k}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(meta[key].items())]
    return "\n".join(lines) + "\n"
