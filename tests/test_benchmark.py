"""``skvqad benchmark`` on small trees in each supported layout."""

import json

import numpy as np
import pytest
from PIL import Image

from skvqad import VQVAEAnomalyDetector
from skvqad._benchmark import PROTOCOLS, markdown
from skvqad._cli import main
from skvqad._json import json_text
from skvqad.metrics import image_roc_auc, pixel_roc_auc

from .conftest import TINY
from .test_datasets import _cifar_pickles


def _mvtec_category(root, size=32):
    rng = np.random.default_rng(0)
    for split, n in (("train/good", 4), ("test/good", 2), ("test/crack", 2)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size), np.uint8)).save(
                root / split / f"{i:03d}.png"
            )
    (root / "ground_truth/crack").mkdir(parents=True)
    for i in range(2):
        mask = np.zeros((size, size), np.uint8)
        mask[4:12, 6:14] = 255
        Image.fromarray(mask).save(root / "ground_truth/crack" / f"{i:03d}_mask.png")


@pytest.fixture
def small_protocols(monkeypatch):
    """Small images so that the paper's settings run in a second."""
    for name, size in (("mvtec", 32), ("folder", 32), ("ucsd", 16), ("cifar10", 32)):
        monkeypatch.setitem(PROTOCOLS, name, {**PROTOCOLS[name], "image_size": size})


def _run(argv, out):
    return main(
        [
            "benchmark",
            *argv,
            "--quick",
            "--max-epochs",
            "1",
            "--quiet",
            "--output-dir",
            str(out),
        ]
    )


def _refuse(constant):
    raise ValueError(f"not strict JSON: {constant}")


def _strict_json(path):
    """The file read as parsers other than Python's do: no NaN or Infinity."""
    return json.loads(path.read_text(), parse_constant=_refuse)


def test_json_is_strict_with_numbers_as_numbers():
    value = {
        "nan": float("nan"),
        "inf": -np.inf,
        "f32": np.float32(0.25),
        "i64": np.int64(3),
        "nested": ({"x": np.float64("nan")}, [np.float32("inf"), 1.5]),
        "other": object,
    }
    text = json_text(value)
    parsed = json.loads(text, parse_constant=_refuse)
    assert parsed["nan"] is None and parsed["inf"] is None
    assert parsed["f32"] == 0.25 and isinstance(parsed["f32"], float)
    assert parsed["i64"] == 3 and isinstance(parsed["i64"], int)
    assert parsed["nested"] == [{"x": None}, [None, 1.5]]
    assert parsed["other"] == str(object)
    assert json_text([1, np.float32(2)], indent=None) == "[1, 2.0]"
    assert np.isnan(value["nested"][0]["x"])  # the input is left alone


def test_mvtec_benchmark_writes_the_paper_table(tmp_path, small_protocols, capsys):
    _mvtec_category(tmp_path / "data" / "grid")
    assert _run(["mvtec", "--root", str(tmp_path / "data")], tmp_path / "out") == 0
    report = _strict_json(tmp_path / "out" / "benchmark.json")
    grid = report["results"]["grid"]
    assert grid["paper"] == [0.99, 0.99]
    assert report["execution"] == {"mixed_precision": "no", "channels_last": True}
    for column in ("template", "ssim", "am", "ssim+am"):
        for metric in ("image ROC-AUC", "pixel ROC-AUC (pooled)", "AUPRO@0.3"):
            assert 0 <= grid[column][metric] <= 1
    table = (tmp_path / "out" / "benchmark.md").read_text()
    assert "| grid |" in table and "| 0.99 | 0.99 |" in table
    assert "| template | SSIM | AM | SSIM+AM |" in table
    assert (tmp_path / "out" / "grid" / "anomaly_maps.png").is_file()


def test_cifar10_and_ucsd_benchmarks(tmp_path, small_protocols):
    _cifar_pickles(tmp_path / "cifar" / "cifar-10-batches-py")
    argv = ["cifar10", "--root", str(tmp_path / "cifar"), "--category", "ship"]
    assert _run(argv, tmp_path / "c") == 0
    result = json.loads((tmp_path / "c" / "benchmark.json").read_text())["results"]
    assert result["ship"]["paper"] == [0.74, 0.74]
    assert "pixel ROC-AUC (pooled)" not in result["ship"]["ssim"]

    rng = np.random.default_rng(0)
    base = tmp_path / "ucsd" / "UCSDped1"
    for split, clip in (("Train", "Train001"), ("Test", "Test001")):
        for k in range(3):
            (base / split / clip).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (20, 30), np.uint8)).save(
                base / split / clip / f"{k:03d}.tif"
            )
    (base / "Test" / "Test001_gt").mkdir()
    for k in range(3):
        mask = np.zeros((20, 30), np.uint8)
        mask[5:12, 8:20] = 255 * (k > 0)
        Image.fromarray(mask).save(base / "Test" / "Test001_gt" / f"{k:03d}.bmp")
    assert _run(["ucsd", "--root", str(tmp_path / "ucsd")], tmp_path / "u") == 0
    ped1 = json.loads((tmp_path / "u" / "benchmark.json").read_text())["results"][
        "ped1"
    ]
    assert ped1["paper"] == [0.95, 0.95] and ped1["n_test"] == 3


def test_markdown_mean_row():
    columns = ("template", "ssim", "am", "ssim+am")
    report = {
        "dataset": "cifar10", "quick": True, "image_size": 32, "max_epochs": 1,
        "results": {
            c: {"paper": [0.7, 0.7], "fit_seconds": 1.0,
                **{m: {"image ROC-AUC": v + 0.1 * k} for k, m in enumerate(columns)}}
            for c, v in (("airplane", 0.5), ("ship", 0.7))
        },
    }  # fmt: skip
    table = markdown(report)
    assert "| Category | template | SSIM | AM | SSIM+AM |" in table
    assert "| Mean | 0.600 | 0.700 | 0.800 | 0.900 |" in table
    assert "| ship | 0.700 | 0.800 | 0.900 | 1.000 | 0.7 | 0.7 |" in table


def test_params_and_ablation(tmp_path, small_protocols):
    _mvtec_category(tmp_path / "data" / "grid")
    params = ["beta=1.0", "codebook_update=loss", "alignment_normalization=None",
              "batch_size=2"]  # fmt: skip
    argv = ["mvtec", "--root", str(tmp_path / "data"), "--ablation"]
    for param in params:
        argv += ["--param", param]
    assert _run(argv, tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert report["settings"]["beta"] == 1.0
    assert report["settings"]["codebook_update"] == "loss"
    assert report["settings"]["alignment_normalization"] is None
    assert report["model"]["batch_size"] == 2
    # Every estimator parameter is recorded, defaults included.
    assert report["estimator_params"]["beta"] == 1.0
    assert report["estimator_params"]["alignment_distance"] == "euclidean"
    assert report["estimator_params"]["augment_rotation"] == 15.0
    factors = report["ablation"]["grid"]
    assert factors["AM distance"]["euclidean"]["configured"] is True
    # The channel reduction cannot differ on these one-channel images.
    assert "SSIM channels" not in factors
    assert factors["map normalisation"]["per pixel"]["configured"] is True
    assert factors["AM normalisation"]["none"]["configured"] is True
    assert factors["AM normalisation"]["per code"]["configured"] is False
    assert factors["AM dilation"]["7"]["configured"] is True  # the protocol's
    configured = factors["AM dilation"]["7"]
    # The configured variant reproduces the main table's figures (pixel
    # ROC-AUC from histograms of 2**16 and 2**20 bins: within 1e-4).
    for map_type in ("ssim", "ssim+am"):
        assert configured[map_type]["pixel ROC-AUC (pooled)"] == pytest.approx(
            report["results"]["grid"][map_type]["pixel ROC-AUC (pooled)"], abs=1e-4
        )
    # SSIM does not depend on the AM's settings; the AM does.
    dilations = factors["AM dilation"]
    assert (
        len({round(r["ssim"]["pixel ROC-AUC (pooled)"], 9) for r in dilations.values()})
        == 1
    )
    table = (tmp_path / "out" / "ablation.md").read_text()
    assert "| AM normalisation | none * |" in table


@pytest.mark.parametrize(
    "param, message",
    [("nonsense=1", "unknown detector parameter"), ("beta", "NAME=VALUE"),
     ("device=cuda", "set with --device")],
)  # fmt: skip
def test_bad_param_is_a_usage_error(param, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "mvtec", "--root", str(tmp_path), "--param", param])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_ablation_follows_the_configured_pooling_and_constants(
    tmp_path, small_protocols
):
    _cifar_pickles(tmp_path / "cifar" / "cifar-10-batches-py")
    argv = ["cifar10", "--root", str(tmp_path / "cifar"), "--category", "ship",
            "--ablation", "--param", "score_pooling=max",
            "--param", "ssim_k1=0.05"]  # fmt: skip
    assert _run(argv, tmp_path / "c") == 0
    report = json.loads((tmp_path / "c" / "benchmark.json").read_text())
    main_figure = report["results"]["ship"]["ssim+am"]["image ROC-AUC"]
    constants = report["ablation"]["ship"]["SSIM constants"]
    configured = [row for row in constants.values() if row["configured"]]
    assert len(configured) == 1  # the configured K1 = 0.05 is evaluated too
    assert "ssim_k1=0.05" in next(k for k, r in constants.items() if r["configured"])
    row = configured[0]["ssim+am"]
    assert row["image ROC-AUC"] == row["image ROC-AUC (max)"]
    assert row["image ROC-AUC"] == pytest.approx(main_figure, abs=1e-9)


def test_zero_epochs_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "mvtec", "--root", str(tmp_path), "--max-epochs", "0"])
    assert exc.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_quick_budget_is_steps_not_epochs(tmp_path, small_protocols, monkeypatch):
    from skvqad._benchmark import epochs_for_steps

    assert epochs_for_steps(25, 16, 3000) == 1500  # 2 batches an epoch
    assert epochs_for_steps(240, 16, 3000) == 200  # 15 batches an epoch
    assert epochs_for_steps(5000, 16, 10) == 1
    monkeypatch.setitem(
        PROTOCOLS, "mvtec", {**PROTOCOLS["mvtec"], "quick_steps": 4, "quick_crop": 16}
    )
    _mvtec_category(tmp_path / "data" / "grid")
    argv = ["benchmark", "mvtec", "--root", str(tmp_path / "data"), "--quick",
            "--quiet", "--output-dir", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert report["steps"] == 4 and report["settings"]["crop_size"] == 16
    assert report["results"]["grid"]["max_epochs"] == 4  # 1 batch an epoch
    assert "4 training steps" in (tmp_path / "out" / "benchmark.md").read_text()


def test_defect_images_without_masks_count_for_image_metrics_only(
    tmp_path, small_protocols, capsys
):
    from skvqad._benchmark import evaluate
    from skvqad.datasets import load_mvtec_ad

    _mvtec_category(tmp_path / "data" / "grid")
    (tmp_path / "data/grid/test/crack/002.png").write_bytes(
        (tmp_path / "data/grid/test/crack/000.png").read_bytes()
    )  # a third defect image, with no mask
    assert _run(["mvtec", "--root", str(tmp_path / "data")], tmp_path / "out") == 0
    # The command line prints warnings as one line each.
    assert "skvqad benchmark: warning: 1 anomalous test image(s) have no mask" in (
        capsys.readouterr().err
    )
    report = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert report["results"]["grid"]["n_test_without_mask"] == 1
    assert "1 anomalous test image(s) without a mask" in (
        (tmp_path / "out" / "benchmark.md").read_text()
    )
    # Pixel figures leave the maskless image out; image figures keep it.
    with pytest.warns(UserWarning, match="no mask"):
        data = load_mvtec_ad(tmp_path / "data", "grid", image_size=32)
    detector = VQVAEAnomalyDetector(**TINY).fit(data.X_train)
    figures, _ = evaluate(detector, data, "mvtec", detailed=False)
    maps = detector.anomaly_map(data.X_test)
    keep = data.has_mask
    assert figures["ssim+am"]["pixel ROC-AUC (pooled)"] == pytest.approx(
        pixel_roc_auc(data.masks_test[keep], maps[keep]),
        abs=1e-4,  # histograms
    )
    assert figures["ssim+am"]["pixel ROC-AUC (pooled)"] != pytest.approx(
        pixel_roc_auc(data.masks_test, maps)
    )
    scores = -detector.score_samples(data.X_test)
    assert figures["ssim+am"]["image ROC-AUC"] == pytest.approx(
        image_roc_auc(data.y_test, scores)
    )


def test_image_size_option_overrides_the_protocol(tmp_path, small_protocols, capsys):
    _mvtec_category(tmp_path / "data" / "grid", size=48)
    argv = ["mvtec", "--root", str(tmp_path / "data"), "--image-size", "16"]
    assert _run(argv, tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert report["image_size"] == 16  # not the protocol's 32
    assert "16 px" in (tmp_path / "out" / "benchmark.md").read_text()
    argv = ["cifar10", "--root", str(tmp_path), "--image-size", "16"]
    assert _run(argv, tmp_path / "out2") == 1
    assert "does not apply to cifar10" in capsys.readouterr().err


def test_streamed_evaluation_equals_the_exact_metrics_and_reads_files(tmp_path):
    from skvqad import TemplateAnomalyDetector
    from skvqad._benchmark import evaluate
    from skvqad.datasets import load_data_set, make_texture_defects
    from skvqad.metrics import aupro, f1_max

    texture = make_texture_defects(n_train=16, n_test=12, image_size=32,
                                   random_state=0)  # fmt: skip
    root = tmp_path / "set"
    for split, images in (("train/good", texture.X_train), ("test", texture.X_test)):
        for i, image in enumerate(images):
            kind = "good" if split == "train/good" else texture.defect_types[i]
            folder = root / (split if split != "test" else f"test/{kind}")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray((image * 255).round().astype(np.uint8)).save(
                folder / f"{i:03d}.png"
            )
            if split == "test" and kind != "good":
                truth = root / "ground_truth" / kind
                truth.mkdir(parents=True, exist_ok=True)
                mask = texture.masks_test[i].astype(np.uint8) * 255
                Image.fromarray(mask).save(truth / f"{i:03d}_mask.png")
    data = load_data_set(root)
    lazy = load_data_set(root, lazy=True)
    assert not isinstance(lazy.X_test, np.ndarray)
    detector = VQVAEAnomalyDetector(**{**TINY, "batch_size": 5}).fit(data.X_train)
    figures, scores = evaluate(detector, data, "folder")
    from_files, file_scores = evaluate(detector, lazy, "folder")
    assert from_files == figures  # the same batches, read from the files
    np.testing.assert_array_equal(file_scores, scores)
    np.testing.assert_array_equal(scores, detector.score_samples(data.X_test))
    masks = data.masks_test
    template = TemplateAnomalyDetector(
        score_pooling=detector.score_pooling, score_sigma=detector.score_sigma
    ).fit(data.X_train)
    exact_maps = {
        "ssim+am": detector.anomaly_map(data.X_test),
        "template": template.anomaly_map(data.X_test),
    }
    for column, maps in exact_maps.items():
        got = figures[column]
        # Histogram metrics within what PixelMetrics states; the rest exact.
        assert abs(got["pixel ROC-AUC (pooled)"] - pixel_roc_auc(masks, maps)) < 1e-4
        assert abs(got["AUPRO@0.3"] - aupro(masks, maps)) < 1e-4
        # F1-max is a maximum over thresholds: merging nearby thresholds
        # moved it by 1.3e-4 on the template's maps here (PixelMetrics' notes).
        assert abs(got["pixel F1-max"] - f1_max(masks, maps)) < 5e-4
        assert got["pixel ROC-AUC (per image)"] == pytest.approx(
            pixel_roc_auc(masks, maps, average="per_image"), abs=1e-12
        )
        assert got["image ROC-AUC (max)"] == pytest.approx(
            image_roc_auc(data.y_test, maps.max(axis=(1, 2))), abs=1e-12
        )
