"""The evaluation report: one Markdown file and its PNG plots, in a directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sensor.evaluation.evaluate import Evaluation
from sensor.evaluation.metrics import NORMAL, confusion, roc_curve
from sensor.models.categories import CATEGORIES

_TITLES = {
    "verdict": "verdict (classifier + autoencoder gate)",
    "classifier": "classifier alone",
    "autoencoder": "autoencoder",
    "isolation_forest": "isolation forest",
    "1-NN": "baseline: 1-nearest-neighbour",
    "isolation_forest_10": "baseline: isolation forest, 10 features",
}


def write_report(result: Evaluation, directory: str | Path) -> Path:
    """Write ``report.md`` and its plots into ``directory``; return the .md path."""
    import matplotlib

    matplotlib.use("Agg")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    images = []
    for name, predicted in result.predicted.items():
        images.append(_confusion_png(directory / f"confusion-{name}.png", confusion(result.truth, predicted),
                                     _TITLES.get(name, name)))
    images.append(_roc_png(directory / "roc.png", result))
    for kind, threshold in result.thresholds.items():
        images.append(_histogram_png(directory / f"scores-{kind}.png", result, kind, threshold))
    path = directory / "report.md"
    path.write_text(_markdown(result, [i.name for i in images]), encoding="utf-8")
    return path


def _markdown(result: Evaluation, images: list[str]) -> str:
    s = result.summary
    lines = [f"# Evaluation on `{Path(s['data']['file']).name}`", ""]
    lines += [f"{s['data']['rows']:,} rows, sha256 `{s['data']['sha256']}`.", ""]
    lines += ["| category | rows |", "|---|---:|"]
    lines += [f"| {c} | {n:,} |" for c, n in s["data"]["categories"].items()]
    lines += ["", summary_text(s), "## By attack name", "", _by_attack_table(s["by_attack"]), "", "## Plots", ""]
    lines += [f"![{i}]({i})" for i in images]
    return "\n".join(lines) + "\n"


def summary_text(s: dict) -> str:
    """Headline, per-class and confusion tables (Markdown, readable as text)."""
    lines = ["## Headline", "", "| model | accuracy | cost per example | binary accuracy | ROC AUC |",
             "|---|---:|---:|---:|---:|"]
    for name, row in _headline_rows(s):
        lines.append(f"| {_TITLES.get(name, name)} | {_f(row.get('accuracy'))} | {_f(row.get('cost_per_example'))} "
                     f"| {_f(row.get('binary_accuracy'))} | {_f(row.get('roc_auc'))} |")
    lines += ["", "Anomaly models: binary accuracy at the threshold calibrated on training normals "
              "(in each model's metadata), never on this file.", ""]
    lines += ["## Per class (verdict)", "", "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for c, m in s["per_class"].items():
        lines.append(f"| {c} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']:,} |")
    lines += ["", "## Confusion matrix (verdict; rows true, columns predicted)", "",
              "| | " + " | ".join(CATEGORIES) + " |", "|---|" + "---:|" * len(CATEGORIES)]
    for c, row in zip(CATEGORIES, s["confusion"]["matrix"]):
        lines.append(f"| **{c}** | " + " | ".join(f"{v:,}" for v in row) + " |")
    return "\n".join(lines) + "\n\n"


def _headline_rows(s: dict):
    yield "verdict", {k: s["verdict"][k] for k in ("accuracy", "cost_per_example", "binary_accuracy")}
    yield "classifier", {**s["classifier"], "roc_auc": s["roc_auc"]["classifier"]}
    for kind in ("autoencoder", "isolation_forest"):
        if kind in s:
            yield kind, s[kind]
    for name, row in s.get("baselines", {}).items():
        yield name, row


def _by_attack_table(by_attack: dict) -> str:
    kinds = [k[: -len("_flagged")] for k in next(iter(by_attack.values()), {}) if k.endswith("_flagged")]
    head = "| label | category | rows | verdict correct | called an attack | " + " | ".join(
        f"{_TITLES.get(k, k)} flags" for k in kinds) + " |"
    rows = [head, "|---|---|---:|---:|---:|" + "---:|" * len(kinds)]
    for name, e in by_attack.items():
        rows.append(f"| {name} | {e['category']} | {e['rows']:,} | {e['verdict_correct']:.3f} | {e['called_attack']:.3f} | "
                    + " | ".join(f"{e[k + '_flagged']:.3f}" for k in kinds) + " |")
    return "\n".join(rows)


def _f(value) -> str:
    return "" if value is None else f"{value:.4f}"


def _confusion_png(path: Path, cm: np.ndarray, title: str) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, f"{v:,}", ha="center", va="center", fontsize=8, color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(CATEGORIES)), CATEGORIES)
    ax.set_yticks(range(len(CATEGORIES)), CATEGORIES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _roc_png(path: Path, result: Evaluation) -> Path:
    import matplotlib.pyplot as plt

    attack = result.truth != NORMAL
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    for name, score in result.scores.items():
        fpr, tpr, _ = roc_curve(attack, score)
        ax.plot(fpr, tpr, label=_TITLES.get(name, name) + (" (P(attack))" if name == "classifier" else ""))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5)
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(0, 1)
    ax.set_xlabel("false-positive rate (normal rows flagged)")
    ax.set_ylabel("true-positive rate (attack rows flagged)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("ROC, normal vs attack", fontsize=10)
    return _save(fig, path)


def _histogram_png(path: Path, result: Evaluation, kind: str, threshold: float) -> Path:
    import matplotlib.pyplot as plt

    score = result.scores[kind].astype(np.float64)
    attack = result.truth != NORMAL
    log = score.min() > 0 and score.max() / score.min() > 100
    edges = np.geomspace(score.min(), score.max(), 80) if log else np.linspace(score.min(), score.max(), 80)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(score[~attack], bins=edges, alpha=0.6, label="normal")
    ax.hist(score[attack], bins=edges, alpha=0.6, label="attack")
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    if log:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"{_TITLES.get(kind, kind)} score")
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path
