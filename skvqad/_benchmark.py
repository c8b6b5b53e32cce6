"""``skvqad benchmark``: the paper's protocols, with its tables' numbers beside ours."""

import json
import time
from pathlib import Path

import numpy as np
import torch

from .metrics import aupro, f1_max, image_roc_auc, pixel_roc_auc

#: Table I of Gangloff et al. (2022): MVTec AD pixel ROC-AUC, (SSIM, SSIM+AM).
PAPER_MVTEC = {
    "carpet": (0.92, 0.94), "grid": (0.99, 0.99), "leather": (0.98, 0.98),
    "tile": (0.70, 0.75), "wood": (0.82, 0.84), "bottle": (0.94, 0.95),
    "cable": (0.87, 0.87), "capsule": (0.93, 0.94), "hazelnut": (0.98, 0.99),
    "metal_nut": (0.89, 0.90), "pill": (0.86, 0.90), "screw": (0.98, 0.98),
    "toothbrush": (0.96, 0.97), "transistor": (0.77, 0.78), "zipper": (0.97, 0.98),
}  # fmt: skip
#: Table II: UCSD Ped1 pixel ROC-AUC.
PAPER_UCSD = (0.95, 0.95)
#: Table III: CIFAR-10 one-vs-rest image ROC-AUC.
PAPER_CIFAR10 = {
    "airplane": (0.71, 0.69), "automobile": (0.63, 0.65), "bird": (0.63, 0.65),
    "cat": (0.62, 0.63), "deer": (0.60, 0.64), "dog": (0.67, 0.67),
    "frog": (0.61, 0.63), "horse": (0.63, 0.63), "ship": (0.74, 0.74),
    "truck": (0.64, 0.65),
}  # fmt: skip

#: The paper's architecture (Section III-A), for a GPU.
FULL_MODEL = dict(hidden_channels=256, n_embeddings=512, embedding_dim=256,
                  n_residual_layers=3, lr=2e-4, batch_size=16)  # fmt: skip
#: Reduced model for CPU smoke runs (--quick).
QUICK_MODEL = dict(hidden_channels=64, n_embeddings=256, embedding_dim=64,
                   n_residual_layers=2, lr=1e-3, batch_size=16)  # fmt: skip

#: Per data set: image size and settings of the paper, epochs (full, quick).
_MVTEC = dict(image_size=256, n_downsampling=3, dilation_size=7, epochs=(300, 100))
PROTOCOLS = {
    "mvtec": _MVTEC,
    "folder": _MVTEC,
    "ucsd": dict(image_size=128, n_downsampling=2, dilation_size=7,
                 ssim_dilation_size=7, epochs=(100, 20)),
    "cifar10": dict(image_size=32, n_downsampling=2, dilation_size=3, epochs=(100, 20)),
}  # fmt: skip


#: Post-processing variants of the ablation (``--ablation``): one factor at a
#: time, each value evaluated on the same trained network.
MAP_FACTORS = {
    "SSIM window": [
        ("Gaussian 11", dict(ssim_win_size=11, ssim_gaussian_weights=True)),
        ("uniform 15", dict(ssim_win_size=15, ssim_gaussian_weights=False)),
    ],
    "SSIM constants": [
        ("K=(0.01, 0.03)", dict(ssim_k1=0.01, ssim_k2=0.03)),
        ("c=(0.01, 0.03) as printed", dict(ssim_k1=0.1, ssim_k2=0.03**0.5)),
    ],
    "SSIM channels": [
        ("mean", dict(ssim_channel_reduction="mean")),
        ("min", dict(ssim_channel_reduction="min")),
        ("luminance", dict(ssim_channel_reduction="luminance")),
    ],
    "reconstruction": [
        ("CB mean", dict(reconstruction="mean")),
        ("CB parameter", dict(reconstruction="probs")),
    ],
    "AM upsampling": [
        ("nearest", dict(upsampling="nearest")),
        ("bilinear", dict(upsampling="bilinear")),
    ],
    "AM dilation": [(f"{k}", dict(dilation_size=k)) for k in (1, 3, 7, 15)],
    "AM distance": [
        ("squared", dict(alignment_distance="squared")),
        ("euclidean", dict(alignment_distance="euclidean")),
    ],
    "AM normalisation": [
        ("none", dict(alignment_normalization=None)),
        ("per code", dict(alignment_normalization="per_code")),
    ],
}
_MAP_TYPES = ("ssim", "am", "ssim+am")


def add_parser(commands):
    """Register the ``benchmark`` subcommand."""
    from ._cli import param_option, positive_int, run_options

    bench = commands.add_parser(
        "benchmark",
        help="run the paper's protocol on a data set and write its table",
        description=(
            "Train and evaluate with the paper's settings (image size, depth, "
            "dilation) and write benchmark.md (a table in the layout of the "
            "paper's Tables I-III, with the paper's numbers beside ours), "
            "benchmark.json (every figure and setting) and a Fig. 2-style "
            "picture per category. --quick uses a small model for CPU runs."
        ),
    )
    bench.add_argument("dataset", choices=sorted(PROTOCOLS), help="data set kind")
    bench.add_argument(
        "--root",
        required=True,
        type=Path,
        help="mvtec: folder of categories; folder: a data set in the MVTec "
        "layout; ucsd: folder holding UCSDped1; cifar10: cifar-10-batches-py "
        "or train/ and test/ folders",
    )
    bench.add_argument("--category", action="append",
                       help="mvtec category, or cifar10 class (repeatable; "
                       "default: all found / all ten)")  # fmt: skip
    bench.add_argument(
        "--quick", action="store_true", help="small model and fewer epochs, for a CPU"
    )
    bench.add_argument(
        "--max-epochs", type=positive_int, help="override the epochs (>= 1)"
    )
    param_option(bench, "overrides the protocol's settings, --quick and --max-epochs")
    bench.add_argument(
        "--ablation",
        action="store_true",
        help="also evaluate every post-processing variant (SSIM window, "
        "constants and channel reduction, reconstruction, AM upsampling, "
        "dilation, distance and normalisation), one factor at a time, on each "
        "trained network, with the SSIM+AM map pooled by its mean and its "
        "maximum; writes ablation.md",
    )
    bench.add_argument(
        "--output-dir",
        type=Path,
        default=Path("skvqad-benchmark"),
        help="output folder (default: skvqad-benchmark)",
    )
    run_options(bench)
    return bench


def _runs(args):
    """(name, loader) pairs for the requested data set."""
    from .datasets import (
        load_cifar10_one_vs_rest,
        load_mvtec_ad,
        load_ucsd_ped,
    )
    from .datasets._loaders import CIFAR10_CLASSES

    size = PROTOCOLS[args.dataset]["image_size"]
    if args.dataset == "mvtec":
        found = sorted(p.name for p in args.root.iterdir() if (p / "train").is_dir())
        names = args.category or found
        return [
            (n, lambda n=n: load_mvtec_ad(args.root, n, image_size=size)) for n in names
        ]
    if args.dataset == "folder":
        root = args.root.resolve()
        return [
            (root.name, lambda: load_mvtec_ad(root.parent, root.name, image_size=size))
        ]
    if args.dataset == "ucsd":
        return [("ped1", lambda: load_ucsd_ped(args.root, "ped1", image_size=size))]
    names = args.category or list(CIFAR10_CLASSES)
    return [(n, lambda n=n: load_cifar10_one_vs_rest(args.root, n)) for n in names]


def _paper(dataset, name):
    if dataset == "mvtec":
        return PAPER_MVTEC.get(name)
    if dataset == "ucsd":
        return PAPER_UCSD
    if dataset == "cifar10":
        return PAPER_CIFAR10.get(name)
    return None  # a folder data set is not in the paper


def _pool(maps, how):
    if how == "max":
        return maps.max(axis=(1, 2)).astype(np.float64)
    return maps.mean(axis=(1, 2), dtype=np.float64)


def _evaluate(detector, data, dataset):
    """Every figure for the SSIM and SSIM+AM maps of one data set."""
    figures = {}
    # UCSD: only the clips with pixel ground truth are evaluated.
    keep = data.has_mask if dataset == "ucsd" else slice(None)
    configured = detector.anomaly_map_type
    for map_type in ("ssim", "ssim+am"):
        detector.set_params(anomaly_map_type=map_type)
        all_maps = detector.anomaly_map(data.X_test)
        maps, y = all_maps[keep], data.y_test[keep]
        scores = _pool(maps, detector.score_pooling)
        result = {"image ROC-AUC": image_roc_auc(y, scores)}
        if dataset != "cifar10":
            masks = data.masks_test[keep]
            result |= {
                "pixel ROC-AUC (pooled)": pixel_roc_auc(masks, maps),
                "pixel ROC-AUC (per image)": pixel_roc_auc(
                    masks, maps, average="per_image"
                ),
                "AUPRO@0.3": aupro(masks, maps),
                "pixel F1-max": f1_max(masks, maps),
            }
        figures[map_type] = result
    detector.set_params(anomaly_map_type=configured)
    return figures, all_maps


def _map_variants(detector):
    """(factor, label, params, is_configured) for every ablation variant."""
    current = detector.get_params()
    variants = []
    for factor, values in MAP_FACTORS.items():
        rows = []
        for label, params in values:
            same = all(
                np.isclose(current[k], v) if isinstance(v, float) else current[k] == v
                for k, v in params.items()
            )
            rows.append((factor, label, params, same))
        if not any(row[3] for row in rows):  # the configured value is none of them
            keys = {k for _, p in values for k in p}
            configured = {k: current[k] for k in sorted(keys)}
            label = ", ".join(f"{k}={v}" for k, v in configured.items())
            rows.insert(0, (factor, label, configured, True))
        variants += rows
    return variants


def _ablation(detector, data, dataset):
    """Headline figures of every post-processing variant, one forward pass a batch.

    Returns ``{factor: {label: {map type: {metric: value}}, ...}}``; the
    configured value of each factor is marked with ``"configured": True``.
    """
    keep = data.has_mask if dataset == "ucsd" else slice(None)
    pooling = detector.score_pooling
    images = detector._validate_images(data.X_test, reset=False)
    variants = _map_variants(detector)
    restore = {k: detector.get_params()[k] for _, _, p, _ in variants for k in p}
    pixel = dataset != "cifar10"
    n, height, width = images.shape[:3]
    store = {
        (i, mt): (
            np.empty((n, height, width), np.float32) if pixel else None,
            np.empty(n),
            np.empty(n),
        )
        for i in range(len(variants))
        for mt in _MAP_TYPES
    }
    try:
        for batch_slice, batch in detector._iter_batches(images):
            with torch.no_grad():
                output = detector.net_.module_(detector._pad(batch))
                for i, (_, _, params, _) in enumerate(variants):
                    detector.set_params(**restore)
                    detector.set_params(**params)
                    for mt in _MAP_TYPES:
                        maps = detector._maps_of_output(batch, output, mt)
                        full, mean, peak = store[i, mt]
                        if pixel:
                            full[batch_slice] = maps.cpu().numpy()
                        mean[batch_slice] = maps.mean(dim=(1, 2)).cpu().numpy()
                        peak[batch_slice] = maps.amax(dim=(1, 2)).cpu().numpy()
    finally:
        detector.set_params(**restore)
    y = data.y_test[keep]
    table = {}
    for i, (factor, label, _, same) in enumerate(variants):
        row = {"configured": same}
        for mt in _MAP_TYPES:
            full, mean, peak = store[i, mt]
            figures = {
                "image ROC-AUC (mean)": image_roc_auc(y, mean[keep]),
                "image ROC-AUC (max)": image_roc_auc(y, peak[keep]),
            }
            # The headline image figure pools as the detector is configured.
            figures["image ROC-AUC"] = figures[f"image ROC-AUC ({pooling})"]
            if pixel:
                figures["pixel ROC-AUC (pooled)"] = pixel_roc_auc(
                    data.masks_test[keep], full[keep]
                )
            row[mt] = figures
        table.setdefault(factor, {})[label] = row
    return table


def run(args):
    """Run the benchmark; print and write the table. Returns the exit code."""
    from . import VQVAEAnomalyDetector
    from ._cli import _figure

    protocol = PROTOCOLS[args.dataset]
    model = QUICK_MODEL if args.quick else FULL_MODEL
    epochs = args.max_epochs
    if epochs is None:
        epochs = protocol["epochs"][1 if args.quick else 0]
    settings = {k: v for k, v in protocol.items() if k not in ("epochs", "image_size")}
    model = {**model, **{k: v for k, v in args.param if k in model}}
    settings |= {k: v for k, v in args.param if k not in model}
    if "max_epochs" in settings:
        epochs = settings.pop("max_epochs")
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    report = {"dataset": args.dataset, "quick": args.quick,
              "image_size": protocol["image_size"], "max_epochs": epochs,
              "model": model, "settings": settings, "results": {}}  # fmt: skip
    for name, load in _runs(args):
        data = load()
        detector = VQVAEAnomalyDetector(
            **model, **settings, max_epochs=epochs, device=args.device,
            random_state=args.seed, verbose=0 if args.quiet else 1,
        )  # fmt: skip
        start = time.perf_counter()
        detector.fit(data.X_train)
        seconds = round(time.perf_counter() - start, 1)
        figures, maps = _evaluate(detector, data, args.dataset)
        if args.ablation:
            report.setdefault("ablation", {})[name] = _ablation(
                detector, data, args.dataset
            )
        report["device"] = str(detector.net_.device)
        # Every parameter, defaults included, so that a run stays readable
        # after the defaults change.
        report["estimator_params"] = {
            k: v if isinstance(v, (bool, int, float, str, type(None))) else repr(v)
            for k, v in detector.get_params().items()
        }
        report["results"][name] = {
            "n_train": len(data.X_train), "n_test": len(data.X_test),
            "fit_seconds": seconds, "codebook_usage": detector.codebook_usage_,
            "final_train_loss": detector.net_.history[-1, "train_loss"],
            "final_perplexity": detector.net_.history[-1, "perplexity"],
            "paper": _paper(args.dataset, name), **figures,
        }  # fmt: skip
        if args.dataset != "cifar10":
            (out / name).mkdir(exist_ok=True)
            _figure(detector, data, maps, out / name)
        print(f"{name}: {json.dumps(figures)}")
    (out / "benchmark.json").write_text(json.dumps(report, indent=2, default=str))
    table = markdown(report)
    (out / "benchmark.md").write_text(table)
    print(table)
    if args.ablation:
        (out / "ablation.md").write_text(ablation_markdown(report))
        print(f"wrote {out / 'ablation.md'}")
    print(f"wrote {out / 'benchmark.md'} and {out / 'benchmark.json'}")
    return 0


def ablation_markdown(report):
    """One table per category: variants as rows, SSIM / AM / SSIM+AM columns."""
    pixel = report["dataset"] != "cifar10"
    metric = "pixel ROC-AUC (pooled)" if pixel else "image ROC-AUC"
    lines = []
    for name, factors in report["ablation"].items():
        lines += [
            f"Post-processing ablation, {report['dataset']} {name} ({metric}, "
            f"image scores pooled by {report['settings'].get('score_pooling', 'mean')}"
            "; image ROC-AUC with mean and max pooling of the SSIM+AM map); "
            "* = configured",
            "",
            "| Factor | Value | SSIM | AM | SSIM+AM | image SSIM+AM (mean) "
            "| image SSIM+AM (max) |",
            "|---|---|---|---|---|---|---|",
        ]
        for factor, rows in factors.items():
            for label, row in rows.items():
                mark = " *" if row["configured"] else ""
                values = " | ".join(f"{row[mt][metric]:.3f}" for mt in _MAP_TYPES)
                both = row["ssim+am"]
                mean = both.get("image ROC-AUC (mean)", both["image ROC-AUC"])
                lines.append(
                    f"| {factor} | {label}{mark} | {values} "
                    f"| {mean:.3f} | {both['image ROC-AUC (max)']:.3f} |"
                )
        lines.append("")
    return "\n".join(lines)


def markdown(report):
    """The paper's table layout: one row per category, ours and the paper's."""
    metric = (
        "image ROC-AUC" if report["dataset"] == "cifar10" else "pixel ROC-AUC (pooled)"
    )
    what = "quick CPU model" if report["quick"] else "paper's model"
    lines = [
        f"{metric}, {report['dataset']}, {what}, {report['image_size']} px, "
        f"{report['max_epochs']} epoch(s), on {report.get('device', '?')}",
        "",
        "Settings: "
        + ", ".join(
            f"{k}={v}"
            for k, v in {
                **report.get("model", {}),
                **report.get("settings", {}),
            }.items()
        ),
        "",
        "| Category | VQ-VAE SSIM | VQ-VAE SSIM+AM | paper SSIM | paper SSIM+AM "
        "| fit (s) |",
        "|---|---|---|---|---|---|",
    ]
    ours = {"ssim": [], "ssim+am": []}
    for name, r in report["results"].items():
        paper = r["paper"] or ("–", "–")
        values = [r[m][metric] for m in ("ssim", "ssim+am")]
        ours["ssim"].append(values[0])
        ours["ssim+am"].append(values[1])
        lines.append(
            f"| {name} | {values[0]:.3f} | {values[1]:.3f} | {paper[0]} | {paper[1]} "
            f"| {r['fit_seconds']} |"
        )
    if len(report["results"]) > 1:
        lines.append(
            f"| Mean | {np.mean(ours['ssim']):.3f} | {np.mean(ours['ssim+am']):.3f} "
            "| | | |"
        )
    return "\n".join(lines) + "\n"
