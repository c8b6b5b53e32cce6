"""The command line: demo, fit, score, evaluate, and its errors."""

import csv
import json

import joblib
import numpy as np
import pytest
from PIL import Image

from skvqad._cli import main
from skvqad._scoring import pool_maps
from skvqad.datasets._files import list_images
from skvqad.datasets._io import read_images

SMALL = [
    "--max-epochs",
    "2",
    "--hidden-channels",
    "8",
    "--n-embeddings",
    "16",
    "--embedding-dim",
    "4",
    "--n-residual-layers",
    "1",
    "--quiet",
]


def test_demo_writes_figure_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        [
            "demo",
            "--max-epochs",
            "1",
            "--n-train",
            "16",
            "--output-dir",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    for map_type in ("ssim", "ssim+am"):
        for metric in ("image ROC-AUC", "pixel ROC-AUC"):
            assert 0.0 <= report["results"][map_type][metric] <= 1.0
    # What "auto" meant on this CPU, beside the parameters as given.
    assert report["execution"] == {"mixed_precision": "no", "channels_last": True}
    assert report["params"]["mixed_precision"] == "auto"
    assert (out / "anomaly_maps.png").stat().st_size > 10_000
    assert "pixel ROC-AUC" in (out / "report.md").read_text()
    assert "pixel ROC-AUC" in capsys.readouterr().out


def _tree(root):
    rng = np.random.default_rng(0)
    for split, n in (("train/good", 6), ("test/good", 2), ("test/dent", 2)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (24, 24), np.uint8)).save(
                root / split / f"{i:03d}.png"
            )
    (root / "ground_truth/dent").mkdir(parents=True)
    for i in range(2):
        mask = np.zeros((24, 24), np.uint8)
        mask[4:10, 4:10] = 255
        Image.fromarray(mask).save(root / "ground_truth/dent" / f"{i:03d}_mask.png")


def test_fit_score_evaluate_round_trip(tmp_path, capsys):
    _tree(tmp_path / "widget")
    model = tmp_path / "model.joblib"
    assert (
        main(
            [
                "fit",
                "--data",
                str(tmp_path / "widget"),
                "--out",
                str(model),
                "--image-size",
                "16",
                *SMALL,
            ]
        )
        == 0
    )
    scores_dir = tmp_path / "scores"
    assert (
        main(
            [
                "score",
                "--model",
                str(model),
                "--images",
                str(tmp_path / "widget/test/dent"),
                "--output-dir",
                str(scores_dir),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(scores_dir / "scores.csv")))
    assert [r["file"] for r in rows] == ["000.png", "001.png"]
    maps = np.load(scores_dir / "maps.npy")
    # Without --image-size, score resizes to the size the model was trained at.
    assert maps.shape == (2, 16, 16) and maps.dtype == np.float32
    np.testing.assert_allclose(
        [float(r["anomaly_score"]) for r in rows],
        pool_maps(maps, "gaussian_contrast", 8.0),  # the detector's default score
        rtol=1e-4,
    )
    assert {r["prediction"] for r in rows} <= {"1", "-1"}
    # One scoring path: the CSV holds what the saved detector itself says.
    detector = joblib.load(model)
    images = read_images(
        list_images(tmp_path / "widget/test/dent"), image_size=16, color="gray"
    )
    np.testing.assert_allclose(
        [float(r["anomaly_score"]) for r in rows],
        -detector.score_samples(images),
        rtol=1e-4,
    )
    assert [int(r["prediction"]) for r in rows] == detector.predict(images).tolist()
    assert len(list((scores_dir / "maps").glob("*.png"))) == 2
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(tmp_path / "widget"),
                "--model",
                str(model),
                "--image-size",
                "16",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads((out / "report.json").read_text())["fit_seconds"] is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--data", "/no/such/folder"], "not found"),
        (
            ["score", "--model", "/no/model.joblib", "--images", "."],
            "model file not found",
        ),
        (["fit", "--data", "/no/such", "--out", "m.joblib"], "not found"),
        (["fit", "--data", ".", "--out", "."], "is a folder"),
    ],
)
def test_errors_are_one_line_and_exit_1(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_parameter_is_reported(tmp_path, capsys):
    _tree(tmp_path / "widget")
    assert (
        main(
            [
                "fit",
                "--data",
                str(tmp_path / "widget"),
                "--out",
                str(tmp_path / "m.joblib"),
                "--lr",
                "-1",
            ]
        )
        == 1
    )
    assert "'lr' parameter" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # caught by argparse
        main(["fit", "--data", str(tmp_path), "--out", "m", "--max-epochs", "0"])
    assert usage.value.code == 2


@pytest.mark.parametrize(
    "param, message",
    [
        ("beta=-1", "'beta' parameter of VQVAEAnomalyDetector must be a float"),
        ("eval_batch_size=0", "'eval_batch_size' parameter"),
        ("augment=sideways", "'augment' parameter"),
    ],
)
def test_bad_param_value_stops_before_any_data_is_read(param, message, capsys):
    missing = "/nonexistent/skvqad-data"  # reading it would fail otherwise
    for command in (["fit", "--data", missing, "--out", "m"], ["benchmark", "folder"]):
        with pytest.raises(SystemExit) as usage:
            main(command + ["--root", missing] * (command[0] == "benchmark")
                 + ["--param", param])  # fmt: skip
        assert usage.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--texture", "wood"])
    assert exc.value.code == 2


def test_unreadable_model_and_one_class_data(tmp_path, capsys):
    empty = tmp_path / "empty.joblib"
    empty.write_bytes(b"")
    assert main(["score", "--model", str(empty), "--images", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "cannot load a model" in err and err.count("\n") == 1
    _tree(tmp_path / "widget")
    import shutil

    shutil.rmtree(tmp_path / "widget/test/dent")
    shutil.rmtree(tmp_path / "widget/ground_truth")
    argv = ["evaluate", "--data", str(tmp_path / "widget"), "--image-size", "16"]
    assert main(argv + SMALL) == 1  # refused before training
    assert "no anomalous test images" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["score", "--model", "m", "--images", ".", "--image-size", "-1"])


def test_fit_takes_any_detector_parameter(tmp_path):
    import joblib

    _tree(tmp_path / "widget")
    model = tmp_path / "model.joblib"
    argv = ["fit", "--data", str(tmp_path / "widget"), "--out", str(model),
            "--image-size", "16", *SMALL, "--param", "codebook_update=loss",
            "--param", "augment=None", "--param", "beta=0.5"]  # fmt: skip
    assert main(argv) == 0
    detector = joblib.load(model)
    assert detector.codebook_update == "loss"
    assert detector.augment is None
    assert detector.beta == 0.5  # --param overrides --beta's default


def test_evaluate_reports_defect_images_without_masks(tmp_path, capsys):
    _tree(tmp_path / "widget")
    (tmp_path / "widget/ground_truth/dent/001_mask.png").unlink()
    out = tmp_path / "out"
    argv = ["evaluate", "--data", str(tmp_path / "widget"), "--image-size", "16",
            "--output-dir", str(out), *SMALL]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "skvqad evaluate: warning: 1 anomalous test image(s) have no mask" in err
    assert "warnings.warn" not in err  # no Python source line
    report = json.loads((out / "report.json").read_text())
    assert report["n_test_without_mask"] == 1
    assert "1 anomalous test image(s) without a mask" in (out / "report.md").read_text()
    assert 0 <= report["results"]["ssim+am"]["pixel ROC-AUC"] <= 1


def test_evaluate_and_fit_train_the_quick_benchmark_model():
    # One CPU preset: `evaluate` on an MVTec AD category trains what
    # `benchmark mvtec --quick` trains, so their figures compare.
    from skvqad._benchmark import CPU_MODEL, PROTOCOLS
    from skvqad._cli import _detector_from, _parser

    protocol = PROTOCOLS["mvtec"]
    for command in ("evaluate", "fit"):
        argv = [command, "--data", "d"] + (["--out", "m"] if command == "fit" else [])
        detector = _detector_from(_parser().parse_args(argv), n_train=25)
        params = detector.get_params()
        assert {k: params[k] for k in CPU_MODEL} == CPU_MODEL
        assert params["n_downsampling"] == protocol["n_downsampling"]
        assert params["dilation_size"] == protocol["dilation_size"]
        assert params["crop_size"] == protocol["quick_crop"]
        assert params["max_epochs"] == -(-protocol["quick_steps"] // 2)  # 2 batches


def test_evaluate_without_any_mask_writes_null_pixel_figures(tmp_path, capsys):
    import shutil

    _tree(tmp_path / "widget")
    shutil.rmtree(tmp_path / "widget/ground_truth/dent")
    out = tmp_path / "out"
    argv = ["evaluate", "--data", str(tmp_path / "widget"), "--image-size", "16",
            "--output-dir", str(out), *SMALL]  # fmt: skip
    assert main(argv) == 0
    assert "have no mask" in capsys.readouterr().err
    text = (out / "report.json").read_text()
    assert "NaN" not in text  # strict JSON: null, not NaN
    report = json.loads(text)
    assert report["results"]["ssim+am"]["pixel ROC-AUC"] is None
    assert "| pixel ROC-AUC | – |" in (out / "report.md").read_text()


def test_evaluate_report_has_settings_threshold_scores_and_saves_the_model(
    tmp_path, capsys
):
    _tree(tmp_path / "widget")
    out, model = tmp_path / "eval", tmp_path / "trained.joblib"
    argv = ["evaluate", "--data", str(tmp_path / "widget"), "--image-size", "16",
            "--output-dir", str(out), "--out", str(model), *SMALL]  # fmt: skip
    assert main(argv) == 0
    assert (
        model.is_file() and f"saved the detector to {model}" in capsys.readouterr().out
    )
    text = (out / "report.md").read_text()
    assert "Settings: n_downsampling=" in text and "max_epochs=2" in text
    assert "Threshold: an image is predicted anomalous when" in text
    report = json.loads((out / "report.json").read_text())
    detector = joblib.load(model)
    assert report["offset"] == pytest.approx(detector.offset_)
    assert len(report["images"]) == report["n_test"] == 4
    assert [r["kind"] for r in report["images"]] == ["dent", "dent", "good", "good"]
    rows = [line for line in text.splitlines() if line.startswith("| 00")]
    assert len(rows) == 4 and rows[0].startswith("| 000.png | dent |")
    # Two epochs: the loss is still falling, and the report says so.
    assert "**Warning**: the training loss still fell" in text
    scored = tmp_path / "scores"
    images = str(tmp_path / "widget/test/dent")
    score = ["score", "--model", str(model), "--images", images, "--output-dir"]
    assert main([*score, str(scored)]) == 0
    with_model = [*argv[: -len(SMALL)], "--model", str(model)]
    assert main(with_model) == 1
    assert "not with --model" in capsys.readouterr().err


def test_convergence_warning_reads_the_loss_curve():
    from skvqad._report import convergence_warning

    flat = [{"train_loss": 1.0 + 0.001 * (i % 2)} for i in range(40)]
    assert convergence_warning(flat) is None
    falling = [{"train_loss": 100.0 - 2 * i} for i in range(40)]
    assert "fell by" in convergence_warning(falling)
    assert convergence_warning([{"train_loss": 1.0}]) is None


def test_progress_in_a_log_file_is_one_plain_line_per_tenth(capsys):
    from types import SimpleNamespace

    from skvqad._net import EpochProgressBar

    progress = EpochProgressBar()
    history = []
    net = SimpleNamespace(max_epochs=20, history=history)
    progress.on_train_begin(net)  # stderr is captured here: not a terminal
    assert progress.bar_ is None
    for epoch in range(20):
        history.append({"train_loss": 1.0 / (epoch + 1), "perplexity": 5.0})
        progress.on_epoch_end(net)
    progress.on_train_end(net)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and "\r" not in "".join(lines)
    assert lines[-1].startswith("epoch 20/20, ") and "perplexity=5.0" in lines[-1]


def test_report_parameters_are_plain_json():
    from skvqad._net import EpochProgressBar
    from skvqad._report import _readable

    callbacks = [("progress", EpochProgressBar()), EpochProgressBar()]
    assert _readable(callbacks) == ["EpochProgressBar", "EpochProgressBar"]
    assert _readable(None) is None and _readable("auto") == "auto"
    assert " at 0x" not in json.dumps(_readable(callbacks))
