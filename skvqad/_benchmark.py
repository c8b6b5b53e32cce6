"""``skvqad benchmark``: the paper's protocols, with its tables' numbers beside ours."""

import time

import numpy as np
import torch
from tqdm.auto import tqdm

from ._anomaly_map import (
    MAP_TYPES,
    POOLINGS,
    detector_map_batches,
    eval_batch_size,
    forward_batches,
    map_settings,
    maps_of_output,
    normalize_maps,
)
from ._detector import VQVAEAnomalyDetector
from ._fit_statistics import variant_statistics
from ._json import json_text
from ._plotting import save_evaluation_figure
from ._scoring import pool_maps_all
from ._template import TemplateAnomalyDetector, template_maps
from ._validation import check_images
from .datasets import (
    load_cifar10_one_vs_rest,
    load_data_set,
    load_mvtec_ad,
    load_ucsd_ped,
)
from .datasets._image_files import as_image_files
from .datasets._loaders import CIFAR10_CLASSES
from .metrics import PixelMetrics, PixelROCAUC, image_roc_auc
from .metrics._metrics import _roc_auc_rows

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
#: The one reduced model for CPUs: ``--quick`` and the command line's
#: ``fit``, ``evaluate`` and ``demo`` defaults.
CPU_MODEL = dict(hidden_channels=64, n_embeddings=256, embedding_dim=64,
                 n_residual_layers=2, lr=1e-3, batch_size=16)  # fmt: skip

#: Per data set: image size and settings of the paper, its epochs, and the
#: quick (CPU) training budget: optimisation steps, whatever the number of
#: training images, on random crops of ``quick_crop`` pixels (None: whole
#: images), so that a quick run costs the same on 25 or 2,500 images.
_MVTEC = dict(image_size=256, n_downsampling=3, dilation_size=7, epochs=300,
              quick_steps=6000, quick_crop=64)  # fmt: skip
PROTOCOLS = {
    "mvtec": _MVTEC,
    "folder": _MVTEC,
    "ucsd": dict(image_size=128, n_downsampling=2, dilation_size=7,
                 ssim_dilation_size=7, epochs=100, quick_steps=6000,
                 quick_crop=64),
    # The paper's score there, the map's mean: the anomaly is the whole
    # image, which "gaussian_contrast" would subtract.
    "cifar10": dict(image_size=32, n_downsampling=2, dilation_size=3, epochs=100,
                    quick_steps=6000, quick_crop=None, score_pooling="mean"),
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
    "reconstruction calibration": [
        ("none", dict(reconstruction_calibration=None)),
        ("isotonic", dict(reconstruction_calibration="isotonic")),
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
    "map normalisation": [
        ("none", dict(map_normalization=None)),
        ("per pixel", dict(map_normalization="per_pixel")),
    ],
}
#: The columns of the headline tables: the no-learning template baseline,
#: then the VQ-VAE's maps.
COLUMNS = ("template", "ssim", "am", "ssim+am")
COLUMN_NAMES = {"template": "template", "ssim": "SSIM", "am": "AM",
                 "ssim+am": "SSIM+AM"}  # fmt: skip


def _image_size(args):
    """The image size a run loads at: ``--image-size`` (0: the files'), else
    the protocol's."""
    size = getattr(args, "image_size", None)
    if size is None:
        return PROTOCOLS[args.dataset]["image_size"]
    if args.dataset == "cifar10":
        raise ValueError("--image-size does not apply to cifar10 (32 x 32 images).")
    return size or None


def execution_of(detector):
    """What a fitted detector's "auto" execution settings resolved to."""
    module = detector.net_.module_
    return {
        "mixed_precision": module.mixed_precision,
        "channels_last": module.channels_last,
    }


def layout_kwargs(args):
    """The Folder-layout options of a command as :func:`load_data_set` takes them."""
    return dict(
        normal_dir=args.normal_dir,
        abnormal_dir=args.abnormal_dir,
        mask_dir=args.mask_dir,
        normal_test_dir=args.normal_test_dir,
        normal_split_ratio=args.normal_split_ratio,
        random_state=args.seed,
    )


def _runs(args):
    """(name, loader) pairs for the requested data set."""
    # Test images are read from their files batch by batch (lazy) when
    # evaluated, so that a test set of any size fits (training_set_in_memory).
    reading = dict(
        image_size=_image_size(args), keep_aspect=not args.stretch, lazy=True
    )
    if args.dataset == "mvtec":
        found = sorted(p.name for p in args.root.iterdir() if (p / "train").is_dir())
        names = args.category or found
        return [(n, lambda n=n: load_mvtec_ad(args.root, n, **reading)) for n in names]
    if args.dataset == "folder":
        root = args.root.resolve()
        layout = layout_kwargs(args)
        return [(root.name, lambda: load_data_set(root, **layout, **reading))]
    size = reading["image_size"]
    if args.dataset == "ucsd":
        return [("ped1", lambda: load_ucsd_ped(args.root, "ped1", image_size=size))]
    names = args.category or list(CIFAR10_CLASSES)
    return [(n, lambda n=n: load_cifar10_one_vs_rest(args.root, n)) for n in names]


def training_set_in_memory(data):
    """A loader's split with ``X_train`` read into an array (the training
    images are drawn many times; the test images, once each, stay files)."""
    if as_image_files(data.X_train) is not None:
        data.X_train = np.asarray(data.X_train)
    return data


def _paper(dataset, name):
    if dataset == "mvtec":
        return PAPER_MVTEC.get(name)
    if dataset == "ucsd":
        return PAPER_UCSD
    if dataset == "cifar10":
        return PAPER_CIFAR10.get(name)
    return None  # a folder data set is not in the paper


def template_baseline(detector, X_train):
    """The no-learning baseline, as issue 17 defines it, pooled like the detector.

    The SSIM settings are :class:`~skvqad.TemplateAnomalyDetector`'s own
    defaults (Gaussian window of 11 pixels, ``K1 = 0.01``, ``K2 = 0.03``:
    the SSIM of Wang et al., 2004), whatever the detector's ``ssim_*``
    parameters, so that a change of the detector's SSIM can never weaken the
    baseline it is measured against.

    Parameters
    ----------
    detector : VQVAEAnomalyDetector
        Its ``score_pooling``, ``score_sigma`` and scoring batch size
        (``eval_batch_size``) are used.
    X_train : array-like of shape (n, H, W[, C])
        The normal training images.

    Returns
    -------
    TemplateAnomalyDetector
        Fitted on ``X_train``, on the detector's device.
    """
    return TemplateAnomalyDetector(
        score_pooling=detector.score_pooling,
        score_sigma=detector.score_sigma,
        # The detector's memory per batch, not the template's 64 images.
        batch_size=eval_batch_size(detector, np.shape(X_train)),
        device=str(detector.net_.device),
    ).fit(X_train)


def evaluate(detector, data, dataset=None, *, detailed=True):
    """Every figure of the template baseline, SSIM, AM and SSIM+AM on one data set.

    One pass over the test images, batch by batch: each batch is read (from
    an array or image files), goes through the network once, and its four
    maps are pooled into image scores and added to streaming pixel metrics
    (:class:`~skvqad.metrics.PixelMetrics`) on the detector's device, then
    dropped. Memory is that of a batch and the histograms, not of the set.

    Parameters
    ----------
    detector : VQVAEAnomalyDetector
        Fitted.
    data : sklearn.utils.Bunch
        A loader's split: ``X_train`` (for the template), ``X_test`` (an
        array or image files), ``y_test`` and (unless ``dataset`` is
        "cifar10") ``masks_test``; for "ucsd" also ``has_mask``.
    dataset : {"mvtec", "folder", "ucsd", "cifar10"} or None, default=None
        The protocol: UCSD evaluates only the clips with pixel ground truth,
        CIFAR-10 has image labels only. None: like "folder".
    detailed : bool, default=True
        Also per-image pixel ROC-AUC, AUPRO@0.3 and pixel F1-max.

    Returns
    -------
    figures : dict
        ``{column: {metric: value}}`` for every column of :data:`COLUMNS`:
        "image ROC-AUC" pools as the detector's ``score_pooling`` (the
        template's too), "image ROC-AUC (<pooling>)" gives every pooling.
        Pooled pixel metrics come from histograms (within 1e-4 of the exact
        values, see :class:`~skvqad.metrics.PixelMetrics`); image metrics
        and the per-image pixel ROC-AUC are exact.
    scores : ndarray of shape (n_test,), float64
        The detector's ``score_samples`` of every test image (its
        ``anomaly_map_type`` and ``score_pooling``).
    """
    keep, pixel_keep = _kept(data, dataset)
    template = template_baseline(detector, data.X_train)
    images = _images(data.X_test)
    n = len(images)
    pooled = {c: {how: np.empty(n) for how in POOLINGS} for c in COLUMNS}
    pixel = _has_pixel_truth(data, dataset, pixel_keep)
    if pixel:
        counted = np.zeros(n, dtype=bool)
        counted[pixel_keep] = True
        streams = {c: PixelMetrics(fpr_limit=0.3) for c in COLUMNS}
        per_image = {c: [] for c in COLUMNS}
    for batch_slice, batch, maps in detector_map_batches(detector, images, MAP_TYPES):
        maps["template"] = template_maps(template, batch)
        rows = counted[batch_slice] if pixel else None
        masks = data.masks_test[batch_slice][rows] if pixel else None
        for column in COLUMNS:
            values = pool_maps_all(maps[column], POOLINGS, detector.score_sigma)
            for how, scores in values.items():
                pooled[column][how][batch_slice] = scores.cpu().numpy()
            if pixel and rows.any():
                kept = maps[column][torch.from_numpy(rows).to(batch.device)]
                streams[column].update(masks, kept)
                both = masks.any(axis=(1, 2)) & ~masks.all(axis=(1, 2))
                if detailed and both.any():
                    flat = (int(both.sum()), -1)
                    per_image[column].append(_roc_auc_rows(
                        masks[both].reshape(flat),
                        kept[torch.from_numpy(both).to(batch.device)].cpu().numpy().reshape(flat),
                    ))  # fmt: skip
    figures = {}
    for column in COLUMNS:
        y = data.y_test[keep]
        result = {
            f"image ROC-AUC ({how})": image_roc_auc(y, scores[keep])
            for how, scores in pooled[column].items()
        }
        # The headline image figure pools as the detector is configured.
        result["image ROC-AUC"] = result[f"image ROC-AUC ({detector.score_pooling})"]
        if pixel:
            metrics = streams[column].compute()
            result["pixel ROC-AUC (pooled)"] = metrics["ROC-AUC"]
            if detailed:
                result |= {
                    # NaN when no image holds both normal and defect pixels.
                    "pixel ROC-AUC (per image)": float(
                        np.mean(np.concatenate(per_image[column]))
                        if per_image[column]
                        else np.nan
                    ),
                    "AUPRO@0.3": metrics["AUPRO"],
                    "pixel F1-max": metrics["F1-max"],
                }
        figures[column] = result
    scores = -pooled[detector.anomaly_map_type][detector.score_pooling]
    return figures, scores


def _images(X):
    """A loader's images as they are streamed: image files, or checked arrays."""
    files = as_image_files(X)
    return files if files is not None else check_images(X)


#: Factors that cannot change the maps of one-channel images.
_COLOUR_FACTORS = ("SSIM channels",)


def _kept(data, dataset):
    """Test images kept for image metrics, and for pixel metrics.

    UCSD evaluates only the clips with pixel ground truth, for both; other
    sets use every image for image metrics and leave the anomalous images
    without a mask (``has_mask`` False) out of pixel metrics.
    """
    has_mask = data.get("has_mask")
    if dataset == "ucsd":
        return has_mask, has_mask
    return slice(None), (slice(None) if has_mask is None else has_mask)


def _has_pixel_truth(data, dataset, pixel_keep):
    """Whether pixel metrics can be computed: masks with a defect pixel."""
    masks = data.get("masks_test")
    return dataset != "cifar10" and masks is not None and masks[pixel_keep].any()


def check_test_labels(data):
    """Raise ValueError, before any training, if the test images are all of
    one kind (no image ROC-AUC can be computed)."""
    kinds = set(np.unique(data.y_test).tolist())
    if kinds == {1}:
        raise ValueError(
            "no normal test images, so no image ROC-AUC: hold some normal images "
            "out (normal_split_ratio > 0, --normal-split-ratio; with at least "
            "two normal images) or give a normal test folder (--normal-test-dir)."
        )
    if kinds == {0}:
        raise ValueError("no anomalous test images, so no ROC-AUC.")


def n_without_mask(data):
    """How many test images of a loader's split have no mask (``has_mask``)."""
    has_mask = data.get("has_mask")
    return 0 if has_mask is None else int((~np.asarray(has_mask)).sum())


def _map_variants(detector):
    """(factor, label, params, is_configured) for every ablation variant.

    Factors that cannot differ on the detector's images (the SSIM's channel
    reduction on one-channel images) are left out.
    """
    current = detector.get_params()
    variants = []
    for factor, values in MAP_FACTORS.items():
        if detector.n_channels_ == 1 and factor in _COLOUR_FACTORS:
            continue
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


def _ablation(detector, data, dataset, *, progress=False):
    """Headline figures of every post-processing variant, one forward pass a batch.

    Returns ``{factor: {label: {map type: {metric: value}}, ...}}``; the
    configured value of each factor is marked with ``"configured": True``.
    ``progress`` shows a progress bar over the test batches.
    """
    keep, pixel_keep = _kept(data, dataset)
    pooling = detector.score_pooling
    images = _images(data.X_test)
    variants = _map_variants(detector)
    configured = detector.get_params()
    merged = [{**configured, **params} for _, _, params, _ in variants]
    settings = [map_settings(params) for params in merged]
    module = detector.net_.module_
    train_images = _images(data.X_train)
    train_batch = eval_batch_size(detector, train_images.shape)
    test_batch = eval_batch_size(detector, images.shape)
    # Each standardised variant gets the statistics of its own training maps.
    normalized = [p["map_normalization"] == "per_pixel" for p in merged]
    statistics = variant_statistics(
        module,
        train_images,
        [s for s, norm in zip(settings, normalized) if norm],
        batch_size=train_batch,
        device=detector.net_.device,
    )
    statistics = [statistics.pop(0) if norm else None for norm in normalized]
    pixel = _has_pixel_truth(data, dataset, pixel_keep)
    counted = np.zeros(len(images), dtype=bool)
    counted[pixel_keep] = True
    # Image scores of every variant, map type and pooling; pooled pixel
    # ROC-AUC in coarser histograms than evaluate's (many are held at once).
    pooled = {
        (i, mt): {how: np.empty(len(images)) for how in POOLINGS}
        for i in range(len(variants))
        for mt in MAP_TYPES
    }
    streams = {key: PixelROCAUC(bits=16) for key in pooled} if pixel else {}
    batches = forward_batches(
        module, images, batch_size=test_batch, device=detector.net_.device
    )
    total = -(-len(images) // test_batch)
    bar = tqdm(
        batches, total=total, desc="ablation", unit="batch", disable=not progress
    )
    for batch_slice, batch, output in bar:
        rows = torch.from_numpy(counted[batch_slice]).to(batch.device)
        masks = data.masks_test[batch_slice][counted[batch_slice]] if pixel else None
        parts = {}  # one reconstruction, SM and AM per distinct setting
        for i, variant in enumerate(settings):
            batch_maps = maps_of_output(
                batch, output, module, variant, MAP_TYPES, cache=parts
            )
            for mt, maps in batch_maps.items():
                if statistics[i] is not None:
                    maps = normalize_maps(maps, statistics[i][mt])
                values = pool_maps_all(maps, POOLINGS, detector.score_sigma)
                for how, scores in pooled[i, mt].items():
                    scores[batch_slice] = values[how].cpu().numpy()
                if pixel and len(masks):
                    streams[i, mt].update(masks, maps[rows])
    y = data.y_test[keep]
    table = {}
    for i, (factor, label, _, same) in enumerate(variants):
        row = {"configured": same}
        for mt in MAP_TYPES:
            figures = {
                f"image ROC-AUC ({how})": image_roc_auc(y, scores[keep])
                for how, scores in pooled[i, mt].items()
            }
            # The headline image figure pools as the detector is configured.
            figures["image ROC-AUC"] = figures[f"image ROC-AUC ({pooling})"]
            if pixel:
                figures["pixel ROC-AUC (pooled)"] = streams[i, mt].compute()
            row[mt] = figures
        table.setdefault(factor, {})[label] = row
    return table


def epochs_for_steps(n_images, batch_size, steps):
    """Epochs that make at least ``steps`` optimisation steps, >= 1.

    Parameters
    ----------
    n_images, batch_size, steps : int
        Training images, images per batch and the step budget, all >= 1.

    Returns
    -------
    int
        ``ceil(steps / ceil(n_images / batch_size))``.
    """
    batches = -(-int(n_images) // int(batch_size))
    return max(1, -(-int(steps) // batches))


_PROTOCOL_ONLY = ("epochs", "image_size", "quick_steps", "quick_crop")


def run(args):
    """Run the benchmark; print and write the table. Returns the exit code."""
    protocol = PROTOCOLS[args.dataset]
    named = [
        f"--{k.replace('_', '-')}"
        for k in ("normal_dir", "abnormal_dir", "mask_dir", "normal_test_dir")
        if getattr(args, k, None) is not None
    ]
    if named and args.dataset != "folder":
        verb = "applies" if len(named) == 1 else "apply"
        raise ValueError(f"{', '.join(named)} {verb} to 'benchmark folder' only.")
    model = CPU_MODEL if args.quick else FULL_MODEL
    settings = {k: v for k, v in protocol.items() if k not in _PROTOCOL_ONLY}
    if args.quick and protocol["quick_crop"]:
        settings["crop_size"] = protocol["quick_crop"]
    model = {**model, **{k: v for k, v in args.param if k in model}}
    settings |= {k: v for k, v in args.param if k not in model}
    # Epochs: --param max_epochs, else --max-epochs, else the protocol's
    # (full), else from the quick step budget and each data set's size.
    epochs = settings.pop("max_epochs", args.max_epochs)
    if epochs is None and not args.quick:
        epochs = protocol["epochs"]
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    report = {"dataset": args.dataset, "quick": args.quick,
              "image_size": _image_size(args), "max_epochs": epochs,
              "keep_aspect": not args.stretch,
              "steps": None if epochs else protocol["quick_steps"],
              "model": model, "settings": settings, "results": {}}  # fmt: skip
    for name, load in _runs(args):
        data = training_set_in_memory(load())
        check_test_labels(data)
        n_epochs = epochs or epochs_for_steps(
            len(data.X_train), model["batch_size"], protocol["quick_steps"]
        )
        detector = VQVAEAnomalyDetector(
            **model, **settings, max_epochs=n_epochs, device=args.device,
            random_state=args.seed, verbose=0 if args.quiet else 1,
        )  # fmt: skip
        start = time.perf_counter()
        detector.fit(data.X_train)
        seconds = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        figures, _ = evaluate(detector, data, args.dataset)
        evaluate_seconds = round(time.perf_counter() - start, 1)
        if args.ablation:
            report.setdefault("ablation", {})[name] = _ablation(
                detector, data, args.dataset, progress=not args.quiet
            )
        report["device"] = str(detector.net_.device)
        report["execution"] = execution_of(detector)
        # Every parameter, defaults included, so that a run stays readable
        # after the defaults change.
        report["estimator_params"] = {
            k: v if isinstance(v, (bool, int, float, str, type(None))) else repr(v)
            for k, v in detector.get_params().items()
        }
        report["results"][name] = {
            "n_train": len(data.X_train), "n_test": len(data.X_test),
            "n_test_without_mask": n_without_mask(data),
            "max_epochs": n_epochs,
            "fit_seconds": seconds, "evaluate_seconds": evaluate_seconds,
            "codebook_usage": detector.codebook_usage_,
            "final_train_loss": detector.net_.history[-1, "train_loss"],
            "final_perplexity": detector.net_.history[-1, "perplexity"],
            "paper": _paper(args.dataset, name), **figures,
            "layout": data.get("layout"), "resize": data.get("resize"),
            "has_masks": data.get("masks_test") is not None,
        }  # fmt: skip
        if args.dataset != "cifar10":
            (out / name).mkdir(exist_ok=True)
            save_evaluation_figure(detector, data, out / name)
        # Evaluation, ablation and figure: everything after the fit.
        after_fit = round(time.perf_counter() - start, 1)
        report["results"][name]["after_fit_seconds"] = after_fit
        if not args.quiet:
            print(f"{name}: {json_text(figures, indent=None)}")
    (out / "benchmark.json").write_text(json_text(report))
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
    lines = []
    pooling = report.get("estimator_params", {}).get("score_pooling", "mean")
    for name, factors in report["ablation"].items():
        first = next(iter(next(iter(factors.values())).values()))
        pixel = "pixel ROC-AUC (pooled)" in first["ssim"]
        metric = "pixel ROC-AUC (pooled)" if pixel else "image ROC-AUC"
        lines += [
            f"Post-processing ablation, {report['dataset']} {name} ({metric}, "
            f"image scores pooled by {pooling}"
            "; image ROC-AUC of the SSIM+AM map under each pooling); "
            "* = configured",
            "",
            "| Factor | Value | SSIM | AM | SSIM+AM | "
            + " | ".join(f"image SSIM+AM ({how})" for how in POOLINGS)
            + " |",
            "|---|---|---|---|---|" + "---|" * len(POOLINGS),
        ]
        for factor, rows in factors.items():
            for label, row in rows.items():
                mark = " *" if row["configured"] else ""
                values = " | ".join(f"{row[mt][metric]:.3f}" for mt in MAP_TYPES)
                both = row["ssim+am"]
                images = " | ".join(
                    f"{both[f'image ROC-AUC ({how})']:.3f}"
                    if f"image ROC-AUC ({how})" in both
                    else "–"
                    for how in POOLINGS
                )
                lines.append(f"| {factor} | {label}{mark} | {values} | {images} |")
        lines.append("")
    return "\n".join(lines)


def _budget(report):
    if report.get("steps"):
        return f"{report['steps']} training steps"
    return f"{report['max_epochs']} epoch(s)"


def _size_words(report):
    size = report["image_size"]
    if not size:
        return "file-size images"
    if report.get("keep_aspect") and report["dataset"] in ("mvtec", "folder"):
        return f"short side {size} px (aspect ratio kept)"
    return f"{size} x {size} px"


def markdown(report):
    """The paper's table layout, with the template baseline and the AM beside.

    One table per metric (pixel ROC-AUC where there are masks, then image
    ROC-AUC): a row per category with the template, SSIM, AM and SSIM+AM,
    the paper's SSIM and SSIM+AM, the fit time and the device.
    """
    what = "quick CPU model" if report["quick"] else "paper's model"
    pooling = report.get("estimator_params", {}).get("score_pooling", "mean")
    metrics = ["image ROC-AUC"]
    metrics += [f"image ROC-AUC ({how})" for how in POOLINGS if how != pooling]
    if report["dataset"] != "cifar10":
        metrics.insert(0, "pixel ROC-AUC (pooled)")
    settings = {**report.get("model", {}), **report.get("settings", {})}
    lines = [
        f"{report['dataset']}, {what}, {_size_words(report)}, "
        f"{_budget(report)}, on {report.get('device', '?')}",
        "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()),
        "",
    ]
    heads = " | ".join(COLUMN_NAMES[c] for c in COLUMNS)
    for metric in metrics:
        paper = metric.startswith("pixel") == (report["dataset"] != "cifar10")
        title = metric.replace("image ROC-AUC", f"image ROC-AUC ({pooling})", 1)
        lines += [
            f"{metric if metric.endswith(')') else title}:",
            "",
            f"| Category | {heads} | paper SSIM | paper SSIM+AM | fit (s) | device |",
            "|---|" + "---|" * (len(COLUMNS) + 4),
        ]
        ours = {c: [] for c in COLUMNS}
        for name, r in report["results"].items():
            theirs = (r["paper"] if paper else None) or ("–", "–")
            for c in COLUMNS:
                ours[c].append(r[c].get(metric, np.nan) if c in r else np.nan)
            values = " | ".join(f"{ours[c][-1]:.3f}" for c in COLUMNS)
            lines.append(
                f"| {name} | {values} | {theirs[0]} | {theirs[1]} "
                f"| {r['fit_seconds']} | {report.get('device', '?')} |"
            )
        if len(report["results"]) > 1:
            means = " | ".join(f"{np.mean(ours[c]):.3f}" for c in COLUMNS)
            lines.append(f"| Mean | {means} | | | | |")
        lines.append("")
    for name, r in report["results"].items():
        lines += [f"{name}: {r[k]}." for k in ("layout", "resize") if r.get(k)]
        if r.get("n_test_without_mask"):
            lines.append(
                f"{name}: {r['n_test_without_mask']} anomalous test image(s) "
                "without a mask count for image metrics only."
            )
        if r.get("has_masks") is False and report["dataset"] != "cifar10":
            lines.append(f"{name}: no masks, so no pixel metrics.")
    return "\n".join(lines)
