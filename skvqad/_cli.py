"""Command line: ``skvqad {demo,fit,score,evaluate,benchmark}``.

Also ``python -m skvqad``.

Every subcommand's parser is here; :mod:`skvqad._benchmark` runs the benchmark.
"""

import argparse
import ast
import csv
import sys
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
import torch
from skimage import io
from sklearn.utils._param_validation import validate_parameter_constraints

from ._anomaly_map import POOLINGS
from ._benchmark import (
    CPU_MODEL,
    PROTOCOLS,
    check_test_labels,
    epochs_for_steps,
    layout_kwargs,
    training_set_in_memory,
)
from ._benchmark import run as run_benchmark
from ._detector import VQVAEAnomalyDetector
from ._net import EpochProgressBar
from ._parameters import CONSTRAINTS
from ._report import write_report
from ._scoring import detector_tensor_scores
from .datasets import load_data_set, make_texture_defects
from .datasets._files import list_images
from .datasets._io import file_shape, n_padded, read_images, target_shape
from .datasets._layout import training_paths

#: Defaults of ``fit`` and ``evaluate``: the one CPU preset, that of
#: ``skvqad benchmark mvtec --quick`` (the CPU model with the MVTec AD
#: protocol's depth and dilation for 256-pixel images), so that their
#: figures compare with the benchmark's.
CLI_MODEL = {
    **CPU_MODEL,
    "n_downsampling": PROTOCOLS["mvtec"]["n_downsampling"],
    "dilation_size": PROTOCOLS["mvtec"]["dilation_size"],
}
#: ``demo``'s: its tiles are 64 pixels, so a finer latent grid (two
#: downsamplings) and a smaller dilation.
DEMO_MODEL = {**CPU_MODEL, "n_downsampling": 2, "dilation_size": 5}


def _training_options():
    """Options shared by ``fit`` and ``evaluate`` (defaults: the CPU model)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("model and training")
    group.add_argument(
        "--steps",
        type=positive_int,
        default=6000,
        help="training budget in optimisation steps, whatever the number of "
        "images: the epochs are ceil(steps / batches per epoch) (default: 6000)",
    )
    group.add_argument(
        "--max-epochs",
        type=positive_int,
        help="training epochs; overrides --steps",
    )
    group.add_argument(
        "--crop-size",
        type=_non_negative,
        default=64,
        help="train on random square crops of this side (a multiple of "
        "2**n_downsampling) of larger images; 0 trains on whole images "
        "(default: 64)",
    )
    for name, kind, what in [
        ("n_downsampling", int, "stride-2 convolutions; latent = image / 2**N"),
        ("n_residual_layers", int, "residual layers in encoder and decoder"),
        ("hidden_channels", int, "channels of hidden convolutions (paper: 256)"),
        ("n_embeddings", int, "codebook size (paper: 512)"),
        ("embedding_dim", int, "codebook vector dimension (paper: 256)"),
        ("batch_size", int, "images per batch"),
        ("lr", float, "Adam learning rate"),
        ("dilation_size", int, "AM dilation square side, pixels"),
    ]:
        group.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=CLI_MODEL[name],
            help=f"{what} (default: {CLI_MODEL[name]})",
        )
    group.add_argument(
        "--beta", type=float, default=0.25, help="commitment weight (default: 0.25)"
    )
    param_option(group, "overrides the options above")
    run_options(group)
    return parent


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _parse_param(text):
    """``NAME=VALUE`` of ``--param``; VALUE read as a Python literal if it is one."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    known = VQVAEAnomalyDetector().get_params()
    if name in ("device", "random_state", "verbose"):
        raise argparse.ArgumentTypeError(
            f"{name!r} is set with --device, --seed or --quiet, not --param"
        )
    if name not in known:
        raise argparse.ArgumentTypeError(f"unknown detector parameter {name!r}")
    try:
        value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        pass  # a plain string such as ema or per_code
    # Checked now, before any data is read or network trained.
    try:
        validate_parameter_constraints(
            {name: CONSTRAINTS[name]}, {name: value}, "VQVAEAnomalyDetector"
        )
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return name, value


def param_option(parser, overrides):
    """``--param NAME=VALUE`` (repeatable): any other detector parameter."""
    parser.add_argument(
        "--param",
        action="append",
        type=_parse_param,
        default=[],
        metavar="NAME=VALUE",
        help="set a VQVAEAnomalyDetector parameter, e.g. --param beta=1.0 "
        "--param codebook_update=loss --param augment=None; VALUE is read as a "
        "Python literal (True, None, 0.5; case matters), else as a string. "
        f"Repeatable; {overrides}",
    )


def run_options(parser):
    """--device, --seed and --quiet, shared by every command that trains."""
    parser.add_argument(
        "--device",
        default="auto",
        help="torch device: auto, cpu, cuda, cuda:1 ... (default: auto)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def _non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _size_option(parser, default=256, default_text="256, the paper's setting"):
    parser.add_argument(
        "--image-size",
        type=_non_negative,
        default=default,
        help="resize images so that their short side is SIZE, keeping the "
        "aspect ratio (images of another aspect are padded by reflection); "
        f"0 keeps the file sizes (default: {default_text})",
    )
    parser.add_argument(
        "--stretch",
        action="store_true",
        help="resize to SIZE x SIZE, not keeping the aspect ratio (the paper's "
        "protocol)",
    )


def data_options(parser):
    """Folder-layout options of every command that reads a data set."""
    group = parser.add_argument_group(
        "data set layout",
        "A data set folder is read in the MVTec AD layout (train/good, "
        "test/<defect>, ground_truth/<defect>) when it has train/, else in "
        "anomalib's Folder layout: normal images in good/, normal/ or ok/, "
        "masks in mask/, masks/, ground_truth/ or gt/, every other folder "
        "anomalous images. Masks stored beside their images (x_mask.png, or "
        "x.png with mask content beside x.jpg) are found in both. These options "
        "name the Folder layout's folders (relative to the data set folder).",
    )
    group.add_argument("--normal-dir", help="folder of normal images")
    group.add_argument(
        "--abnormal-dir",
        action="append",
        help="folder of anomalous images (repeatable; default: every other folder)",
    )
    group.add_argument("--mask-dir", help="folder of masks, matched by file name")
    group.add_argument("--normal-test-dir", help="folder of normal test images")
    group.add_argument(
        "--normal-split-ratio",
        type=float,
        default=0.2,
        help="fraction of the normal images held out for testing when there is "
        "no normal test folder, split with --seed (default: 0.2)",
    )


def _parser():
    parser = argparse.ArgumentParser(
        prog="skvqad",
        description="VQ-VAE image anomaly detection (Gangloff et al., 2022). "
        "Run 'skvqad COMMAND --help' for a command's options.",
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
            "OUTPUT_DIR. Needs no download; one to two minutes on a 2-core CPU."
        ),
    )
    demo.add_argument(
        "--texture",
        choices=("brick", "grass", "gravel"),
        default="brick",
        help="texture photograph (default: brick)",
    )
    demo.add_argument(
        "--output-dir",
        default="skvqad-demo",
        type=Path,
        help="folder for the figure and the report (default: skvqad-demo)",
    )
    demo.add_argument(
        "--max-epochs", type=int, default=40, help="training epochs (default: 40)"
    )
    demo.add_argument(
        "--n-train", type=int, default=200, help="training tiles (default: 200)"
    )
    run_options(demo)

    fit = commands.add_parser(
        "fit",
        parents=[_training_options()],
        help="train a detector on a folder of normal images",
        description="Train on normal images and save the detector with joblib. "
        "DATA is a folder of images, or a data set folder in the MVTec AD "
        "layout (its train/good is used) or the Folder layout (its normal "
        "images, less those held out for testing: the same split as "
        "'evaluate' with the same --seed and --normal-split-ratio).",
    )
    fit.add_argument(
        "--data", required=True, type=Path, help="folder of images, or a data set"
    )
    fit.add_argument(
        "--out", required=True, type=Path, help="model file to write (.joblib)"
    )
    _size_option(fit)
    data_options(fit)

    score = commands.add_parser(
        "score",
        help="score a folder of images with a saved detector",
        description="Write scores.csv (one row per image: anomaly score = "
        "-score_samples, decision_function, prediction +1 normal / -1 "
        "anomaly), maps.npy (float32 maps, rows in scores.csv order) and "
        "one 8-bit grey PNG of each map (white = the 99.9th percentile of "
        "this run's maps; maps.npy keeps the maps' values unscaled).",
    )
    score.add_argument(
        "--model", required=True, type=Path, help="model file from 'skvqad fit'"
    )
    score.add_argument(
        "--images", required=True, type=Path, help="folder of images to score"
    )
    score.add_argument(
        "--output-dir",
        default="skvqad-scores",
        type=Path,
        help="output folder (default: skvqad-scores)",
    )
    _size_option(score, None, "the size the model was trained at")

    evaluate = commands.add_parser(
        "evaluate",
        parents=[_training_options()],
        help="train (or load) and evaluate on a labelled data set",
        description="Evaluate on a data set in the MVTec AD layout (train/good, "
        "test/<defect>, ground_truth/<defect> with <stem>_mask.* or <stem>.* "
        "masks) or anomalib's Folder layout (see below): print image and pixel "
        "ROC-AUC of the template baseline (1 - SSIM "
        "against the mean training image, no learning) and of the SSIM, AM and "
        "SSIM+AM maps, write a figure and a report. Trains on the normal "
        "training images unless --model is given.",
    )
    evaluate.add_argument("--data", required=True, type=Path, help="data set folder")
    evaluate.add_argument(
        "--model", type=Path, help="use this saved detector instead of training"
    )
    evaluate.add_argument(
        "--out",
        type=Path,
        help="also save the detector it trains to this file (.joblib), for "
        "'skvqad score'",
    )
    evaluate.add_argument(
        "--output-dir",
        default="skvqad-evaluate",
        type=Path,
        help="output folder (default: skvqad-evaluate)",
    )
    _size_option(evaluate)
    data_options(evaluate)

    _benchmark_parser(commands)
    return parser


def _benchmark_parser(commands):
    """The ``benchmark`` subcommand (run by :func:`skvqad._benchmark.run`)."""
    bench = commands.add_parser(
        "benchmark",
        help="run the paper's protocol on a data set and write its table",
        description=(
            "Train and evaluate with the paper's settings (image size, depth, "
            "dilation) and write benchmark.md (a table in the layout of the "
            "paper's Tables I-III, with the paper's numbers beside ours), "
            "benchmark.json (every figure and setting; strict JSON, null for a "
            "figure the data cannot give) and a Fig. 2-style "
            "picture per category. --quick uses a small model for CPU runs."
        ),
    )
    bench.add_argument("dataset", choices=sorted(PROTOCOLS), help="data set kind")
    bench.add_argument(
        "--root",
        required=True,
        type=Path,
        help="mvtec: folder of categories; folder: a data set in the MVTec AD "
        "or the Folder layout (see below); ucsd: folder holding UCSDped1; "
        "cifar10: cifar-10-batches-py or train/ and test/ folders",
    )
    bench.add_argument("--category", action="append",
                       help="mvtec category, or cifar10 class (repeatable; "
                       "default: all found / all ten)")  # fmt: skip
    bench.add_argument(
        "--quick",
        action="store_true",
        help="small model, for a CPU: trains for a fixed number of optimisation "
        "steps (6000) whatever the size of the data set, on "
        "random 64-pixel crops of images larger than that",
    )
    bench.add_argument(
        "--max-epochs", type=positive_int, help="override the epochs (>= 1)"
    )
    bench.add_argument(
        "--image-size",
        type=_non_negative,
        help="resize images so that their short side is SIZE instead of the "
        "protocol's size (mvtec and folder 256, ucsd 128), keeping the aspect "
        "ratio (images of another aspect are padded by reflection); 0 keeps "
        "the file sizes; not for cifar10, whose images are 32 x 32",
    )
    bench.add_argument(
        "--stretch",
        action="store_true",
        help="resize to SIZE x SIZE, not keeping the aspect ratio (ucsd always "
        "is, as in the paper)",
    )
    param_option(bench, "overrides the protocol's settings, --quick and --max-epochs")
    bench.add_argument(
        "--ablation",
        action="store_true",
        help="also evaluate every post-processing variant (SSIM window, "
        "constants and channel reduction, reconstruction, AM upsampling, "
        "dilation, distance and normalisation), one factor at a time, on each "
        "trained network, with the SSIM+AM map pooled by each score pooling "
        f"({', '.join(POOLINGS)}); writes ablation.md",
    )
    bench.add_argument(
        "--output-dir",
        type=Path,
        default=Path("skvqad-benchmark"),
        help="output folder (default: skvqad-benchmark)",
    )
    run_options(bench)
    data_options(bench)
    return bench


def _detector_from(args, n_train, preset=CLI_MODEL):
    """The detector the options ask for, to train on ``n_train`` images."""
    params = {k: getattr(args, k) for k in preset if hasattr(args, k)}
    epochs = args.max_epochs or epochs_for_steps(
        n_train, params.get("batch_size", preset["batch_size"]), args.steps
    )
    params = {
        **preset,
        **params,
        "beta": getattr(args, "beta", 0.25),
        "crop_size": getattr(args, "crop_size", 0) or None,
        "max_epochs": epochs,
        **dict(getattr(args, "param", None) or []),
    }
    # One progress bar over the epochs, not skorch's row and bar per epoch
    # (a step budget on crops of a small set makes many short epochs).
    progress = [] if args.quiet else [("progress", EpochProgressBar())]
    params.setdefault("callbacks", progress)
    return VQVAEAnomalyDetector(
        **params,
        device=args.device,
        random_state=args.seed,
        verbose=0,
    )


def _fit_timed(detector, X):
    start = time.perf_counter()
    detector.fit(X)
    return round(time.perf_counter() - start, 1)


def _demo(args):
    data = make_texture_defects(
        args.texture, n_train=args.n_train, random_state=args.seed
    )
    print(
        f"{args.texture}: {len(data.X_train)} normal training tiles, "
        f"{len(data.X_test)} test tiles ({data.y_test.sum()} defective), "
        f"{data.X_train.shape[1]}x{data.X_train.shape[2]} px"
    )
    detector = _detector_from(args, len(data.X_train), DEMO_MODEL)
    fit_seconds = _fit_timed(detector, data.X_train)
    return write_report(detector, data, args.output_dir, args.texture, fit_seconds)


def _image_size(args):
    return None if args.image_size == 0 else args.image_size


def _fit(args):
    _check_out(args.out)
    paths, where = training_paths(args.data, **layout_kwargs(args))
    keep_aspect = not args.stretch
    shapes = [file_shape(p) for p in paths]
    size = target_shape(shapes, _image_size(args), keep_aspect)
    X = read_images(paths, image_size=size, keep_aspect=keep_aspect)
    padded = n_padded(shapes, size, keep_aspect)
    print(
        f"training on {len(X)} images of shape {X.shape[1:]} from {where}"
        + (f"; {padded} of another aspect padded by reflection" if padded else "")
    )
    detector = _detector_from(args, len(X))
    seconds = _fit_timed(detector, X)
    _save_model(detector, args.out)
    print(f"trained in {seconds} s on {detector.net_.device}; saved {args.out}")
    return 0


def _check_out(path):
    if path is not None and path.is_dir():  # checked before training, not after
        raise ValueError(
            f"--out {path} is a folder; give a file name such as model.joblib"
        )


def _save_model(detector, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside, then renamed: a failed save never leaves a broken model.
    partial = path.with_name(path.name + ".partial")
    try:
        joblib.dump(detector, partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _load_model(path):
    if not Path(path).is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        detector = joblib.load(path)
    except Exception as exc:  # truncated, empty or foreign files
        raise ValueError(f"cannot load a model from {path}: {exc!r}") from exc
    if not isinstance(detector, VQVAEAnomalyDetector):
        raise TypeError(f"{path} does not hold a VQVAEAnomalyDetector")
    return detector


def _score(args):
    detector = _load_model(args.model)
    paths = list_images(args.images, what="images")
    keep_aspect = not args.stretch
    size = (
        detector.image_shape_
        if args.image_size is None
        else target_shape(
            [file_shape(p) for p in paths], _image_size(args), keep_aspect
        )
    )
    X = read_images(
        paths,
        image_size=size,
        color="gray" if detector.n_channels_ == 1 else "rgb",
        keep_aspect=keep_aspect,
    )
    maps = detector.anomaly_map(X)
    # Scores and decisions as score_samples / decision_function give them.
    normality = detector_tensor_scores(detector, torch.from_numpy(maps))
    scores, decision = -normality, normality - detector.offset_
    out = args.output_dir
    (out / "maps").mkdir(parents=True, exist_ok=True)
    np.save(out / "maps.npy", maps)
    with open(out / "scores.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "anomaly_score", "decision_function", "prediction"])
        for path, s, d in zip(paths, scores, decision):
            writer.writerow([path.name, f"{s:.6g}", f"{d:.6g}", -1 if d < 0 else 1])
    top = float(np.percentile(maps, 99.9)) or 1.0
    for path, m in zip(paths, maps):
        io.imsave(
            out / "maps" / f"{path.stem}.png",
            (np.clip(m / top, 0, 1) * 255).astype(np.uint8),
            check_contrast=False,
        )
    print(
        f"scored {len(paths)} images: {int((decision < 0).sum())} predicted anomalous"
    )
    print(f"wrote {out / 'scores.csv'}, {out / 'maps.npy'} and {out / 'maps'}/*.png")
    return 0


def _evaluate(args):
    root = args.data.resolve()
    data = load_data_set(
        root,
        **layout_kwargs(args),
        image_size=_image_size(args),
        keep_aspect=not args.stretch,
        lazy=True,  # test images read batch by batch when evaluated
    )
    data = training_set_in_memory(data)
    check_test_labels(data)
    print(
        f"{root.name}: {len(data.X_train)} training and {len(data.X_test)} test "
        f"images ({data.y_test.sum()} anomalous) of shape {data.X_train.shape[1:]}"
        f"\n{data.layout}\nimages {data.resize}"
    )
    if args.model is not None:
        if args.out is not None:
            raise ValueError("--out saves a detector it trains: not with --model.")
        detector, fit_seconds = _load_model(args.model), None
    else:
        _check_out(args.out)
        detector = _detector_from(args, len(data.X_train))
        fit_seconds = _fit_timed(detector, data.X_train)
        if args.out is not None:
            _save_model(detector, args.out)
            print(f"saved the detector to {args.out}")
    return write_report(detector, data, args.output_dir, root.name, fit_seconds)


def main(argv=None):
    """Entry point of the ``skvqad`` console script.

    Parameters
    ----------
    argv : list of str, optional
        Arguments; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        Exit code: 0 on success, 1 on an error (printed as one line on
        stderr), 2 on a usage error (from argparse).
    """
    args = _parser().parse_args(argv)

    def one_line(message, category, *_, **__):
        # A warning is one line for the user, not a Python source line.
        print(f"skvqad {args.command}: warning: {message}", file=sys.stderr)

    commands = {
        "demo": _demo,
        "fit": _fit,
        "score": _score,
        "evaluate": _evaluate,
        "benchmark": run_benchmark,
    }
    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line
            return commands[args.command](args)
    except (ValueError, TypeError, OSError, RuntimeError) as exc:
        print(f"skvqad {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
