"""The report of ``skvqad evaluate`` and ``skvqad demo``: figures, settings,
threshold and per-image scores, as ``report.md`` and ``report.json``."""

from pathlib import Path

import numpy as np

from ._benchmark import COLUMN_NAMES, evaluate, execution_of, n_without_mask
from ._json import json_text
from ._plotting import save_evaluation_figure, segmentation_threshold

#: Parameters named in the report's settings line.
SETTINGS = ("n_downsampling", "hidden_channels", "n_embeddings", "embedding_dim",
            "max_epochs", "batch_size", "lr", "crop_size", "augment_scale", "beta",
            "dilation_size", "map_normalization", "score_pooling", "score_sigma",
            "contamination")  # fmt: skip


def convergence_warning(history, tail=0.1, tolerance=0.02):
    """A sentence if the training loss was still falling fast at the end.

    Compares the mean ``train_loss`` of the last ``tail`` of the epochs with
    that of the ``tail`` before it; a fall of more than ``tolerance`` (as a
    fraction) means the network had not converged. None otherwise, or with
    fewer than 2 epochs.
    """
    losses = np.asarray([row["train_loss"] for row in history], dtype=float)
    if len(losses) < 2:
        return None
    width = max(1, int(len(losses) * tail))
    recent = losses[-width:].mean()
    before = (
        losses[-2 * width : -width].mean() if len(losses) >= 2 * width else losses[0]
    )
    fall = (before - recent) / abs(before) if before else 0.0
    if fall <= tolerance:
        return None
    return (
        f"the training loss still fell by {fall:.0%} over the last "
        f"{width} of {len(losses)} epochs: the network had not converged, and "
        "longer training (--steps, --max-epochs) may give better maps."
    )


def _confusion(images):
    """How many normal and anomalous test images are predicted anomalous."""
    count = {}
    for row in images:
        key = "anomalous" if row["anomalous"] else "normal"
        flagged, total = count.get(key, (0, 0))
        count[key] = (flagged + (row["predicted"] == "anomalous"), total + 1)
    parts = [
        f"{flagged} of {total} {key} test images"
        for key, (flagged, total) in sorted(count.items(), reverse=True)
    ]
    return f"Predicted anomalous: {' and '.join(parts)}."


def _readable(value):
    """A parameter as JSON can hold it: callbacks by their class names."""
    if isinstance(value, list):  # callbacks: instances or (name, instance)
        return [_readable(v[1] if isinstance(v, tuple) else v) for v in value]
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    return type(value).__name__


def write_report(detector, data, output_dir, name, fit_seconds):
    """Print and write ROC-AUC of the template, SSIM, AM and SSIM+AM, the
    settings, the threshold, every test image's score, and a figure."""
    output_dir = Path(output_dir)
    params = detector.get_params()
    report = {
        "data": name,
        "device": str(detector.net_.device),
        "execution": execution_of(detector),
        "fit_seconds": fit_seconds,
        "params": {k: _readable(v) for k, v in params.items() if k != "optimizer"},
        "codebook_usage": round(detector.codebook_usage_, 3),
        "n_train": len(data.X_train),
        "n_test": len(data.X_test),
        "n_test_without_mask": n_without_mask(data),
        "image_size": list(data.X_test.shape[1:3]),
        "layout": data.get("layout"),
        "resize": data.get("resize"),
        "has_masks": data.get("masks_test") is not None,
        "offset": float(detector.offset_),
        "convergence": convergence_warning(detector.net_.history),
        "results": {},
    }
    figures, normality = evaluate(detector, data, detailed=False)
    for map_type, result in figures.items():
        report["results"][map_type] = {
            "image ROC-AUC": result["image ROC-AUC"],
            # None (JSON null) when no anomalous test image has a mask.
            "pixel ROC-AUC": result.get("pixel ROC-AUC (pooled)"),
        }
    names = data.get("filenames")
    kinds = data.get("defect_types", np.where(data.y_test == 1, "anomalous", "good"))
    report["images"] = [
        {"image": Path(names[i]).name if names is not None else str(i),
         "kind": str(kinds[i]), "anomalous": bool(data.y_test[i]),
         "anomaly_score": float(-normality[i]),
         "predicted": "anomalous" if normality[i] < detector.offset_ else "normal"}
        for i in range(len(normality))
    ]  # fmt: skip
    report["segmentation_threshold"] = segmentation_threshold(detector, data.X_train)
    output_dir.mkdir(parents=True, exist_ok=True)
    report["figure"] = str(save_evaluation_figure(detector, data, output_dir))
    (output_dir / "report.json").write_text(json_text(report))
    text = markdown(report)
    (output_dir / "report.md").write_text(text)
    print(text.split("\n## Test images")[0].rstrip())
    print(
        f"figure: {report['figure']}\nreport (with every test image's score): "
        f"{output_dir / 'report.md'} and {output_dir / 'report.json'}"
    )
    return 0


def markdown(report):
    """``report.md``: the ROC-AUC table, then what was read, the settings,
    the threshold and one row per test image."""
    seconds = (
        "" if report["fit_seconds"] is None else f", fit {report['fit_seconds']} s"
    )
    columns = list(report["results"])
    lines = [
        f"| {report['data']} ({report['device']}{seconds}) | "
        + " | ".join(COLUMN_NAMES[c] for c in columns)
        + " |",
        "|---|" + "---|" * len(columns),
    ]
    for metric in ("image ROC-AUC", "pixel ROC-AUC"):
        values = " | ".join(
            "–" if report["results"][c][metric] is None
            else f"{report['results'][c][metric]:.3f}"
            for c in columns
        )  # fmt: skip
        lines.append(f"| {metric} | {values} |")
    if report.get("convergence"):
        lines.append(f"\n**Warning**: {report['convergence']}")
    if report.get("layout"):
        lines.append(f"\nRead: {report['layout']}.")
    if report.get("resize"):
        lines.append(f"\nImages {report['resize']}.")
    if not report.get("has_masks", True):
        lines.append("\nNo masks: image metrics only.")
    if report["n_test_without_mask"]:
        lines.append(
            f"\n{report['n_test_without_mask']} anomalous test image(s) without a "
            "mask count for the image ROC-AUC only."
        )
    lines.append(
        "\ntemplate: 1 - SSIM against the mean training image, a baseline with "
        "no learning."
    )
    params = report["params"]
    settings = ", ".join(f"{k}={params[k]}" for k in SETTINGS if k in params)
    lines += [
        f"\nSettings: {settings}; {report['n_train']} training images; codebook "
        f"usage {report['codebook_usage']:.0%}.",
        "\nThreshold: an image is predicted anomalous when its anomaly score "
        f"(-score_samples) is above {-report['offset']:.4g} (-offset_, set by "
        f"contamination={params.get('contamination')!r} on the training images). "
        f"{_confusion(report['images'])} The training images' scores are "
        "optimistic (the network has seen them), so normal images can score "
        "above them: skvqad.fit_threshold on held-out normal images sets a "
        "threshold with a stated false-positive rate.",
        "\nFigure: red marks the pixels whose map is above "
        f"{report['segmentation_threshold']:.3g}, the 99.5th percentile of the "
        "training maps' pixels, so about 0.5 % of a normal image's pixels are red "
        "by design (often on the image's busiest structure); white outlines the "
        "true defect.",
    ]
    if report.get("images"):
        lines += [
            "\n## Test images\n",
            "| image | kind | anomaly score | predicted |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['image']} | {r['kind']} | {r['anomaly_score']:.4g} | "
            f"{r['predicted']} |"
            for r in report["images"]
        ]
    return "\n".join(lines) + "\n"
