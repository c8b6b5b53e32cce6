"""Command line: ``skvqad demo`` (and ``python -m skvqad demo``)."""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

#: A model small enough for a CPU: the paper's architecture with fewer channels.
DEMO_MODEL = dict(
    n_downsampling=2,
    n_residual_layers=2,
    hidden_channels=64,
    n_embeddings=256,
    embedding_dim=64,
    batch_size=16,
    lr=1e-3,
    dilation_size=5,
)


def _parser():
    parser = argparse.ArgumentParser(
        prog="skvqad",
        description="VQ-VAE image anomaly detection (Gangloff et al., 2022).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="train on the built-in texture data, report ROC-AUC, draw a figure",
        description=(
            "Train a VQ-VAE on defect-free tiles of a real texture photograph "
            "bundled with scikit-image, score test tiles with synthetic "
            "defects (scratches, holes, stains, pasted patches), print the "
            "image and pixel ROC-AUC and write a figure and a report into "
            "OUTPUT_DIR. Needs no download; a few minutes on a laptop CPU."
        ),
    )
    demo.add_argument("--texture", choices=("brick", "grass", "gravel"), default="brick",
                      help="texture photograph (default: brick)")
    demo.add_argument("--output-dir", default="skvqad-demo", type=Path,
                      help="folder for the figure and the report (default: skvqad-demo)")
    demo.add_argument("--max-epochs", type=int, default=40,
                      help="training epochs (default: 40)")
    demo.add_argument("--n-train", type=int, default=200,
                      help="training tiles (default: 200)")
    demo.add_argument("--device", default="auto",
                      help="torch device: auto, cpu, cuda, cuda:1 ... (default: auto)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def _demo(args):
    from . import VQVAEAnomalyDetector
    from .datasets import make_texture_defects

    data = make_texture_defects(
        args.texture, n_train=args.n_train, random_state=args.seed
    )
    print(
        f"{args.texture}: {len(data.X_train)} normal training tiles, "
        f"{len(data.X_test)} test tiles ({data.y_test.sum()} defective), "
        f"{data.X_train.shape[1]}x{data.X_train.shape[2]} px"
    )
    detector = VQVAEAnomalyDetector(
        **DEMO_MODEL,
        max_epochs=args.max_epochs,
        device=args.device,
        random_state=args.seed,
        verbose=0 if args.quiet else 2,
    )
    start = time.perf_counter()
    detector.fit(data.X_train)
    fit_seconds = time.perf_counter() - start
    report = {
        "texture": args.texture,
        "device": str(detector.net_.device),
        "fit_seconds": round(fit_seconds, 1),
        "settings": {**DEMO_MODEL, "max_epochs": args.max_epochs, "seed": args.seed},
        "codebook_usage": round(detector.codebook_usage_, 3),
    }
    results = {}
    for map_type in ("ssim", "ssim+am"):
        detector.set_params(anomaly_map_type=map_type)
        maps = detector.anomaly_map(data.X_test)
        results[map_type] = {
            "image ROC-AUC": roc_auc_score(data.y_test, -detector.score_samples(data.X_test)),
            "pixel ROC-AUC": roc_auc_score(data.masks_test.ravel(), maps.ravel()),
        }
    report["results"] = results
    args.output_dir.mkdir(parents=True, exist_ok=True)
    figure_path = _demo_figure(detector, data, maps, args.output_dir)
    report["figure"] = str(figure_path)
    (args.output_dir / "report.json").write_text(json.dumps(report, indent=2))
    table = _markdown(report)
    (args.output_dir / "report.md").write_text(table)
    print(table)
    print(f"figure: {figure_path}\nreport: {args.output_dir / 'report.json'}")
    return 0


def _demo_figure(detector, data, maps, output_dir):
    """Fig. 2 layout for the first two test tiles of each defect type and one normal tile."""
    import matplotlib

    matplotlib.use("Agg")
    from . import plot_anomaly_maps

    picks = [np.flatnonzero(data.defect_types == "good")[0]]
    for kind in ("scratch", "hole", "stain", "patch"):
        picks += list(np.flatnonzero(data.defect_types == kind)[:2])
    # Segmentation threshold from normal data only: the 99.5th percentile of
    # the training maps' pixels.
    threshold = float(np.percentile(detector.anomaly_map(data.X_train[:64]), 99.5))
    fig = plot_anomaly_maps(
        data.X_test[picks],
        maps[picks],
        reconstructions=detector.reconstruct(data.X_test[picks]),
        masks=data.masks_test[picks],
        threshold=threshold,
        titles=list(data.defect_types[picks]),
    )
    path = output_dir / "anomaly_maps.png"
    fig.savefig(path, dpi=120)
    return path


def _markdown(report):
    lines = [
        f"| {report['texture']} ({report['device']}, fit {report['fit_seconds']} s) "
        "| VQ-VAE SSIM | VQ-VAE SSIM+AM |",
        "|---|---|---|",
    ]
    for metric in ("image ROC-AUC", "pixel ROC-AUC"):
        values = [report["results"][m][metric] for m in ("ssim", "ssim+am")]
        lines.append(f"| {metric} | {values[0]:.3f} | {values[1]:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Entry point of the ``skvqad`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return {"demo": _demo}[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"skvqad {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
