"""The skorch net: flips of the training batches and dead-code restarts."""

import numpy as np
import pytest
import torch

from skvqad import VQVAE, VQVAELoss
from skvqad._net import DeadCodeRestart, VQVAENet


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


@pytest.mark.parametrize("augment", ["hflip", "flips"])
def test_augmented_batches_are_flips_of_the_images(augment, monkeypatch):
    x = _asymmetric_images()
    seen = []
    net = _net(augment=augment, augment_seed=3, max_epochs=1).initialize()
    infer = net.infer

    def spy(x_batch, **kwargs):
        seen.append(x_batch.detach().clone())
        return infer(x_batch, **kwargs)

    monkeypatch.setattr(net, "infer", spy)
    net.partial_fit(x, y=None)
    batch = torch.cat(seen).numpy()
    assert batch.shape == x.shape
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


def test_unknown_augment_is_a_value_error():
    net = _net(augment="rotate", max_epochs=1)
    with pytest.raises(ValueError, match="augment must be one of"):
        net.fit(_asymmetric_images(), y=None)


def test_dead_code_restart_callback_records_and_skips_the_last_epoch():
    torch.manual_seed(0)
    net = _net(max_epochs=3, callbacks=[("restart", DeadCodeRestart(seed=0))])
    net.fit(_asymmetric_images(), y=None)
    restarted = net.history[:, "restarted_codes"]
    assert len(restarted) == 3
    assert restarted[0] > 0  # 64 codes, 2 x 3 latent positions x 16 images
    assert restarted[-1] == 0  # none after the last epoch: the decoder saw all
    assert net.module_.quantizer._last_z_e is None  # not kept after training
