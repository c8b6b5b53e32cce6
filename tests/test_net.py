"""The skorch net: flips and rotations of the training batches, dead-code restarts."""

import pickle

import numpy as np
import pytest
import torch

from skvqad import VQVAE, VQVAELoss
from skvqad._net import (
    DeadCodeRestart,
    VQVAENet,
    _zooms,
    random_crop,
    random_rotated_crop,
    random_rotation,
)


def _net(**kwargs):
    return VQVAENet(
        module=VQVAE,
        module__in_channels=1,
        module__hidden_channels=4,
        module__n_embeddings=64,
        module__embedding_dim=2,
        module__n_downsampling=1,
        module__n_residual_layers=0,
        criterion=VQVAELoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        batch_size=16,
        train_split=None,
        verbose=0,
        **kwargs,
    )


def _asymmetric_images(n=16):
    x = np.zeros((n, 1, 4, 6), np.float32)
    x[:, :, :2, :3] = 1.0  # bright top-left corner: every flip is visible
    x += np.arange(n, dtype=np.float32)[:, None, None, None] / (4 * n)
    return x


def _training_batches(net, x, monkeypatch, shape=None):
    """The images the network trained on in one epoch, (n, C, H, W) numpy."""
    seen = []
    net.initialize()
    infer = net.infer

    def spy(x_batch, **kwargs):
        seen.append(x_batch.detach().clone())
        return infer(x_batch, **kwargs)

    monkeypatch.setattr(net, "infer", spy)
    net.partial_fit(x, y=None)
    batch = torch.cat(seen).numpy()
    assert batch.shape == (x.shape if shape is None else shape)
    return batch


@pytest.mark.parametrize("augment", ["hflip", "flips"])
def test_augmented_batches_are_flips_of_the_images(augment, monkeypatch):
    x = _asymmetric_images()
    net = _net(augment=augment, augment_seed=3, max_epochs=1)
    batch = _training_batches(net, x, monkeypatch)
    original = {round(float(img.mean()), 6): img for img in x}
    kinds = set()
    for img in batch:
        source = original[round(float(img.mean()), 6)]  # flips keep the mean
        if np.array_equal(img, source):
            kinds.add("none")
        elif np.array_equal(img, source[..., ::-1]):
            kinds.add("lr")
        elif np.array_equal(img, source[..., ::-1, :]):
            kinds.add("ud")
        elif np.array_equal(img, source[..., ::-1, ::-1]):
            kinds.add("both")
        else:
            raise AssertionError("a training image is not a flip of an input")
    expected = {"none", "lr"} if augment == "hflip" else {"none", "lr", "ud", "both"}
    assert kinds <= expected and len(kinds) >= 2
    np.testing.assert_array_equal(x, _asymmetric_images())  # input untouched


def test_random_rotation_turns_about_the_centre():
    # A bright dot right of the centre of a 33 x 33 image lands on the circle
    # of its radius, at the drawn angle; the centre itself does not move.
    x = torch.zeros(64, 1, 33, 33)
    x[:, :, 16, 16] = 0.5
    x[:, :, 16, 26] = 1.0
    generator = torch.Generator().manual_seed(0)
    turned = random_rotation(x, 30.0, generator)
    angles = (2 * torch.rand(64, generator=torch.Generator().manual_seed(0)) - 1) * (
        np.pi / 6
    )
    assert turned.shape == x.shape and turned.dtype == x.dtype
    torch.testing.assert_close(turned[:, 0, 16, 16], x[:, 0, 16, 16], atol=1e-5, rtol=0)
    yy, xx = torch.meshgrid(torch.arange(33.0), torch.arange(33.0), indexing="ij")
    bright = turned[:, 0].clone()
    bright[:, 15:18, 15:18] = 0  # leave the centre dot out
    weight = bright.sum(dim=(1, 2))
    cy = (bright * yy).sum(dim=(1, 2)) / weight - 16
    cx = (bright * xx).sum(dim=(1, 2)) / weight - 16
    measured = torch.atan2(cy, cx)
    # Same magnitude as drawn (the sign is the sampling convention's).
    np.testing.assert_allclose(measured.abs(), angles.abs(), atol=0.05)
    assert (torch.sign(measured) == torch.sign(angles)).all() or (
        torch.sign(measured) == -torch.sign(angles)
    ).all()
    assert torch.all(torch.hypot(cx, cy) > 9) and torch.all(torch.hypot(cx, cy) < 11)
    # A constant image stays constant (reflected borders bring no zeros in).
    flat = torch.full((4, 3, 8, 12), 0.25)
    torch.testing.assert_close(random_rotation(flat, 180.0, generator), flat)


def test_training_batches_are_rotated_when_asked(monkeypatch):
    x = np.random.default_rng(0).uniform(size=(16, 1, 8, 8)).astype(np.float32)
    net = _net(augment_rotation=20.0, augment_seed=1, max_epochs=1)
    batch = _training_batches(net, x, monkeypatch)
    # No training image is an input image: each was turned by some angle.
    assert not any(np.allclose(img, source) for img in batch for source in x)
    np.testing.assert_array_equal(
        x, np.random.default_rng(0).uniform(size=x.shape).astype(np.float32)
    )
    with pytest.raises(ValueError, match="augment_rotation"):
        _net(augment_rotation=200.0, max_epochs=1).fit(x, y=None)


def test_random_crop_takes_windows_of_each_image():
    x = torch.arange(3 * 2 * 10 * 12, dtype=torch.float32).reshape(3, 2, 10, 12)
    generator = torch.Generator().manual_seed(0)
    crops = random_crop(x, 4, generator)
    assert crops.shape == (3, 2, 4, 4)
    for image, crop in zip(x, crops):
        # Row-major values: the crop's top-left value gives its offset.
        top, left = divmod(int(crop[0, 0, 0]) % 120, 12)
        torch.testing.assert_close(crop, image[:, top : top + 4, left : left + 4])
    assert random_crop(x, 12, generator).shape == (3, 2, 10, 12)  # rows kept whole
    assert random_crop(x, 64, generator) is x


def test_training_batches_are_crops_when_asked(monkeypatch):
    x = np.random.default_rng(0).uniform(size=(16, 1, 8, 8)).astype(np.float32)
    net = _net(crop_size=4, augment_seed=1, max_epochs=1)
    batch = _training_batches(net, x, monkeypatch, shape=(16, 1, 4, 4))
    # Every training crop is a window of some input image.
    windows = {
        x[i, 0, r : r + 4, c : c + 4].tobytes()
        for i in range(16)
        for r in range(5)
        for c in range(5)
    }
    assert all(crop[0].tobytes() in windows for crop in batch)
    with pytest.raises(ValueError, match="crop_size"):
        _net(crop_size=3, max_epochs=1).fit(x, y=None)


def test_unknown_augment_is_a_value_error():
    net = _net(augment="rotate", max_epochs=1)
    with pytest.raises(ValueError, match="augment must be one of"):
        net.fit(_asymmetric_images(), y=None)


def test_dead_code_restart_callback_records_and_skips_the_last_epoch():
    torch.manual_seed(0)
    restart = DeadCodeRestart(seed=0, min_selections_per_code=1)
    net = _net(max_epochs=3, callbacks=[("restart", restart)])
    net.fit(_asymmetric_images(), y=None)
    restarted = net.history[:, "restarted_codes"]
    assert len(restarted) == 3
    assert restarted[0] > 0  # 64 codes, 2 x 3 latent positions x 16 images
    assert restarted[-1] == 0  # none after the last epoch: the decoder saw all
    assert net.module_.quantizer._last_z_e is None  # not kept after training


def test_dead_code_restart_waits_for_enough_selections():
    # 96 selections an epoch, 64 codes: 2 per code needs two epochs.
    torch.manual_seed(0)
    restart = DeadCodeRestart(seed=0, min_selections_per_code=2)
    net = _net(max_epochs=5, callbacks=[("restart", restart)])
    net.fit(_asymmetric_images(), y=None)
    restarted = net.history[:, "restarted_codes"]
    assert restarted[0] == 0 and restarted[1] > 0  # judged after 192 selections
    assert restarted[2] == 0  # 96 since the last restart: too few again
    torch.manual_seed(0)
    never = _net(max_epochs=3, callbacks=[("restart", DeadCodeRestart(seed=0))])
    never.fit(_asymmetric_images(), y=None)
    assert never.history[:, "restarted_codes"] == [0, 0, 0]  # 100 x 64 > 288


def test_epoch_progress_bar_counts_epochs(capsys):
    from skvqad._net import EpochProgressBar

    net = _net(max_epochs=3, callbacks=[("progress", EpochProgressBar())])
    net.fit(_asymmetric_images(), y=None)
    err = capsys.readouterr().err
    assert "3/3" in err and "train_loss=" in err and "perplexity=" in err
    # The bar holds stderr: a net trained with it must still pickle (skvqad fit
    # saved a 2-byte model file without --quiet).
    restored = pickle.loads(pickle.dumps(net))
    assert len(restored.history) == 3
    bar = EpochProgressBar()
    bar.on_train_begin(net)  # as if training were interrupted
    assert "bar_" not in pickle.loads(pickle.dumps(bar)).__dict__


@pytest.mark.parametrize("terminal", [False, True])
def test_epoch_table_is_coloured_only_on_a_terminal(capsys, monkeypatch, terminal):
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: terminal)
    net = _net(max_epochs=2)
    net.set_params(verbose=1)
    net.fit(_asymmetric_images(), y=None)
    out = capsys.readouterr().out
    assert "train_loss" in out and "perplexity" in out
    # skorch colours the best values (the first epoch's, at least).
    assert ("\x1b[" in out) == terminal


def test_random_rotated_crop_is_a_crop_of_the_turned_image():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 10, 14)
    # Angle 0: exactly random_crop's windows, from the same draws.
    same = random_rotated_crop(x, 4, 0.0, torch.Generator().manual_seed(5))
    plain = random_crop(x, 4, torch.Generator().manual_seed(5))
    torch.testing.assert_close(same, plain)
    # Crop = whole image: random_rotation's turn, from the same angles (the
    # offsets are drawn first, from ranges of one value).
    square = torch.rand(3, 2, 16, 16)
    turned = random_rotated_crop(square, 16, 40.0, torch.Generator().manual_seed(7))
    reference = torch.Generator().manual_seed(7)
    torch.randint(0, 1, (3,), generator=reference)
    torch.randint(0, 1, (3,), generator=reference)
    torch.testing.assert_close(turned, random_rotation(square, 40.0, reference))
    assert not torch.allclose(turned, square)
    # Only the crop is sampled: the output has the crop's size.
    assert random_rotated_crop(x, 4, 15.0, generator).shape == (3, 2, 4, 4)
    assert random_rotated_crop(x, 12, 15.0, generator).shape == (3, 2, 10, 12)


def test_random_zoom_scales_the_sampled_window_log_uniformly():
    # A horizontal ramp: a window sampled at side s * f has a slope of f per
    # output pixel, f the drawn zoom, in [1 / max_scale, max_scale].
    ramp = torch.arange(64.0).repeat(8, 1, 64, 1)
    zoomed = random_rotated_crop(ramp, 16, 0.0, torch.Generator().manual_seed(0), 2.0)
    slopes = zoomed[:, 0, 8, 5:11].diff().mean(-1)  # away from reflected borders
    assert ((slopes >= 0.5 - 1e-4) & (slopes <= 2.0 + 1e-4)).all()
    assert (slopes < 0.95).any() and (slopes > 1.05).any()
    turned = random_rotation(ramp, 0.0, torch.Generator().manual_seed(0), 2.0)
    assert not torch.allclose(turned, ramp)
    # max_scale=1 draws nothing from the generator (trainings without zooms
    # draw the flips, angles and crops they drew before the option existed).
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    assert (_zooms(8, 1.0, generator) == 1).all()
    assert torch.equal(generator.get_state(), state)
    _zooms(8, 1.25, generator)
    assert not torch.equal(generator.get_state(), state)


def test_batch_history_is_read_off_the_device_once_an_epoch():
    from skorch.callbacks import Callback

    from skvqad._net import codebook_perplexity

    seen = []

    class Spy(Callback):
        def on_batch_end(self, net, **kwargs):
            row = net.history[-1, "batches", -1]
            seen.append((type(row["train_loss"]), type(row["perplexity"])))

    X = np.random.default_rng(0).random((12, 1, 8, 8)).astype(np.float32)
    net = _net(callbacks=[Spy()], max_epochs=2)
    net.set_params(batch_size=4)
    net.fit(X)
    # During the epoch the values stay tensors (no host synchronisation) ...
    assert seen == [(torch.Tensor, torch.Tensor)] * 6
    # ... and at its end they are floats, averaged by skorch as before.
    for epoch in net.history:
        losses = [b["train_loss"] for b in epoch["batches"]]
        perplexities = [b["perplexity"] for b in epoch["batches"]]
        assert all(type(v) is float for v in losses + perplexities)
        assert epoch["train_loss"] == pytest.approx(np.mean(losses))
        assert epoch["perplexity"] == pytest.approx(np.mean(perplexities))
        assert epoch["train_batch_count"] == 3
    indices = net.module_.run(torch.from_numpy(X[:4])).indices
    assert 1.0 <= codebook_perplexity(indices, 64) <= 64.0


def test_an_interrupted_epoch_leaves_floats_in_the_history():
    from skorch.callbacks import Callback

    class CtrlCAtBatch2(Callback):
        def on_batch_end(self, net, **kwargs):
            if len(net.history[-1]["batches"]) == 2:
                raise KeyboardInterrupt

    X = np.random.default_rng(0).random((12, 1, 8, 8)).astype(np.float32)
    net = _net(callbacks=[CtrlCAtBatch2()], max_epochs=2)
    net.set_params(batch_size=4)
    net.fit(X)  # skorch ends training quietly on Ctrl-C
    batches = net.history[-1]["batches"]
    assert len(batches) == 2
    assert all(
        type(b[k]) is float for b in batches for k in ("train_loss", "perplexity")
    )
