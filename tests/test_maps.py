"""SSIM map vs scikit-image, alignment map, grey dilation vs scipy, SSIM+AM."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity

from skvqad import (
    alignment_map,
    grey_dilation,
    ssim_am_map,
    ssim_map,
    upsample_alignment_map,
)


def _pair(channels, seed=0, shape=(37, 45)):
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.uniform(size=shape + (channels,)), (2, 2, 0))
    a = np.clip(smooth + rng.normal(0, 0.05, smooth.shape), 0, 1).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.08, a.shape), 0, 1).astype(np.float32)
    return a, b


def _torch(image):
    return torch.from_numpy(image).movedim(-1, 0).unsqueeze(0)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(
            win_size=11, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        ),
        dict(win_size=11, gaussian_weights=True, sigma=1.5, use_sample_covariance=True),
        dict(win_size=7, gaussian_weights=False, use_sample_covariance=True),
        dict(win_size=15, gaussian_weights=False, use_sample_covariance=False),
    ],
)
@pytest.mark.parametrize("matmul_taps", [10**6, 0])  # matrix products, convolution
def test_ssim_map_matches_scikit_image(channels, kwargs, matmul_taps, monkeypatch):
    from skvqad import _maps

    monkeypatch.setattr(_maps, "_MATMUL_TAPS", matmul_taps)
    a, b = _pair(channels)
    _, full = structural_similarity(
        a.astype(np.float64),
        b.astype(np.float64),
        data_range=1.0,
        full=True,
        channel_axis=-1,
        **kwargs,
    )
    expected = full.mean(axis=-1)
    ours = ssim_map(_torch(a), _torch(b), data_range=1.0, **kwargs)[0].numpy()
    assert ours.dtype == np.float32
    pad = kwargs["win_size"] // 2
    inner = (slice(pad, -pad), slice(pad, -pad))
    np.testing.assert_allclose(ours[inner], expected[inner], atol=1e-5, rtol=0)
    # Edges too: both use scipy's 'reflect' boundary.
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)


def test_ssim_map_channel_reductions_match_scikit_image():
    a, b = _pair(3, seed=3)
    kwargs = dict(data_range=1.0, win_size=7, gaussian_weights=False)
    _, full = structural_similarity(
        a.astype(np.float64), b.astype(np.float64), full=True, channel_axis=-1, **kwargs
    )
    worst = ssim_map(_torch(a), _torch(b), channel_reduction="min", **kwargs)
    np.testing.assert_allclose(worst[0].numpy(), full.min(axis=-1), atol=1e-5)
    grey_a, grey_b = rgb2gray(a.astype(np.float64)), rgb2gray(b.astype(np.float64))
    _, luma = structural_similarity(grey_a, grey_b, full=True, **kwargs)
    ours = ssim_map(_torch(a), _torch(b), channel_reduction="luminance", **kwargs)
    np.testing.assert_allclose(ours[0].numpy(), luma, atol=1e-5)
    # One channel: the three reductions are one and the same map.
    g, h = _torch(a[..., :1]), _torch(b[..., :1])
    mean = ssim_map(g, h, **kwargs)
    for reduction in ("min", "luminance"):
        torch.testing.assert_close(
            ssim_map(g, h, channel_reduction=reduction, **kwargs), mean
        )


def test_ssim_map_of_identical_images_is_one_and_batched():
    a, b = _pair(1)
    batch = torch.cat([_torch(a), _torch(b)])
    same = ssim_map(batch, batch, data_range=1.0)
    torch.testing.assert_close(same, torch.ones_like(same))
    pairs = ssim_map(batch, batch.flip(0), data_range=1.0)
    alone = ssim_map(_torch(a), _torch(b), data_range=1.0)
    torch.testing.assert_close(pairs[:1], alone)


def test_ssim_map_bad_arguments():
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        ssim_map(x, torch.rand(1, 1, 16, 15), data_range=1.0)
    with pytest.raises(ValueError, match="odd"):
        ssim_map(x, x, data_range=1.0, win_size=8)
    with pytest.raises(ValueError, match="channel_reduction"):
        ssim_map(x, x, data_range=1.0, channel_reduction="max")
    four = torch.rand(1, 4, 16, 16)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        ssim_map(four, four, data_range=1.0, channel_reduction="luminance")


def test_ssim_map_tiny_images():
    x = torch.rand(2, 1, 1, 5)
    out = ssim_map(x, x.flip(-1), data_range=1.0, win_size=7)
    assert out.shape == (2, 1, 5)
    assert torch.isfinite(out).all()


def test_alignment_map_on_hand_made_codebook():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-2.0, 0.0]])
    # Latent 1 x 2 x 2: vectors (1, 2), (0, 0), (-1, 0), (3, 3).
    z_e = torch.tensor([[[1.0, 0.0], [-1.0, 3.0]], [[2.0, 0.0], [0.0, 3.0]]]).unsqueeze(
        0
    )
    am = alignment_map(z_e, codebook)
    # nearest: (1,1) -> 1; (0,0) -> 0; (-1,0): e0 and e2 both at 1 -> 1; (1,1) -> 8
    expected = torch.tensor([[[1.0, 0.0], [1.0, 8.0]]])
    torch.testing.assert_close(am, expected)
    with pytest.raises(ValueError, match="same D"):
        alignment_map(z_e, torch.zeros(3, 5))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("shape", [(17, 23), (6, 5), (1, 9)])
def test_grey_dilation_matches_scipy_size_semantics(size, shape):
    rng = np.random.default_rng(size)
    maps = rng.normal(size=(2,) + shape).astype(np.float32)
    ours = grey_dilation(torch.from_numpy(maps), size).numpy()
    expected = np.stack([ndimage.grey_dilation(m, size=(size, size)) for m in maps])
    np.testing.assert_array_equal(ours, expected)


def test_grey_dilation_is_flat_not_structure_ones():
    maps = torch.zeros(1, 5, 5)
    maps[0, 2, 2] = 1.0
    ours = grey_dilation(maps, 3)[0].numpy()
    assert ours.max() == 1.0  # a flat element adds nothing
    structured = ndimage.grey_dilation(maps[0].numpy(), structure=np.ones((3, 3)))
    assert structured.max() == 2.0  # the semantics we must not follow
    np.testing.assert_array_equal(ours[1:4, 1:4], np.ones((3, 3)))
    assert ours.sum() == 9.0
    with pytest.raises(ValueError):
        grey_dilation(maps, 0)


def test_upsample_alignment_map_nearest_crop_and_dilate():
    am = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    up = upsample_alignment_map(
        am, output_size=(7, 8), scale_factor=4, upsampling="nearest", dilation_size=1
    )
    assert up.shape == (1, 7, 8)
    assert up[0, 0, 0] == 1.0 and up[0, 3, 3] == 1.0 and up[0, 4, 4] == 4.0
    assert up[0, 6, 7] == 4.0
    bil = upsample_alignment_map(
        am, output_size=(8, 8), scale_factor=4, upsampling="bilinear", dilation_size=1
    )
    assert 1.0 <= bil.min() and bil.max() <= 4.0 and len(bil.unique()) > 4
    with pytest.raises(ValueError, match="cannot cover"):
        upsample_alignment_map(
            am,
            output_size=(9, 8),
            scale_factor=4,
            upsampling="nearest",
            dilation_size=1,
        )
    with pytest.raises(ValueError, match="upsampling"):
        upsample_alignment_map(
            am, output_size=(8, 8), scale_factor=4, upsampling="cubic", dilation_size=1
        )


def test_ssim_am_map_is_the_product_of_dilated_maps():
    rng = np.random.default_rng(0)
    ssim = torch.from_numpy(rng.uniform(-0.2, 1, size=(2, 16, 12)).astype(np.float32))
    am = torch.from_numpy(rng.uniform(0, 3, size=(2, 4, 3)).astype(np.float32))
    out = ssim_am_map(ssim, am, scale_factor=4, dilation_size=5, ssim_dilation_size=3)
    up = np.repeat(np.repeat(am.numpy(), 4, axis=1), 4, axis=2)
    expected = np.stack(
        [
            ndimage.grey_dilation(1 - s, size=(3, 3))
            * ndimage.grey_dilation(u, size=(5, 5))
            for s, u in zip(ssim.numpy(), up)
        ]
    )
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    assert (out >= 0).all()


def test_map_functions_reject_bad_tensors():
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(TypeError, match="dtype"):
        ssim_map(x, x.double(), data_range=1.0)
    with pytest.raises(TypeError, match="floating"):
        ssim_map((x * 255).long(), (x * 255).long(), data_range=255)
    with pytest.raises(TypeError, match="torch.Tensor"):
        ssim_map(x.numpy(), x.numpy(), data_range=1.0)
    with pytest.raises(ValueError, match="sigma"):
        ssim_map(x, x, data_range=1.0, sigma=0)
    with pytest.raises(ValueError, match="empty"):
        ssim_map(x[:, :, :0], x[:, :, :0], data_range=1.0)
    with pytest.raises(ValueError, match="integer"):
        grey_dilation(x[0], 3.0)
    with pytest.raises(TypeError, match="dtype"):
        alignment_map(torch.rand(1, 2, 2, 2), torch.rand(3, 2).double())
    with pytest.raises(ValueError, match="must match"):
        ssim_am_map(torch.rand(1, 8, 8), torch.rand(2, 2, 2), scale_factor=4)
    with pytest.raises(ValueError, match="output_size"):
        upsample_alignment_map(
            torch.rand(1, 2, 2),
            output_size=(-1, 8),
            scale_factor=4,
            upsampling="nearest",
            dilation_size=1,
        )


@pytest.mark.parametrize("matmul_taps", [10**6, 0])  # matrix products, convolution
@pytest.mark.parametrize("sigma", [0.7, 2.0, 8.0])
@pytest.mark.parametrize("shape", [(17, 23), (5, 40)])
def test_gaussian_filter_matches_scipy(sigma, shape, matmul_taps, monkeypatch):
    from skvqad import _maps, gaussian_filter

    monkeypatch.setattr(_maps, "_MATMUL_TAPS", matmul_taps)
    maps = np.random.default_rng(0).uniform(size=(3, *shape))
    ours = gaussian_filter(torch.from_numpy(maps), sigma).numpy()
    for mine, image in zip(ours, maps):
        np.testing.assert_allclose(
            mine, ndimage.gaussian_filter(image, sigma, mode="reflect"), atol=1e-12
        )
    with pytest.raises(ValueError, match="sigma"):
        gaussian_filter(torch.from_numpy(maps), 0.0)


def test_gaussian_filter_in_batches_equals_one_pass(monkeypatch):
    # Float64 convolutions on the CPU unfold every map; a cap on that buffer
    # splits the batch (10,000 maps of 32x32 once took 8 GB in one pass).
    from skvqad import _maps, gaussian_filter

    maps = torch.from_numpy(np.random.default_rng(1).uniform(size=(7, 12, 9)))
    monkeypatch.setattr(_maps, "_MATMUL_TAPS", 0)  # the convolution path
    whole = gaussian_filter(maps, 3.0)
    monkeypatch.setattr(_maps, "_UNFOLD_ELEMENTS", 1)  # one map a batch
    np.testing.assert_array_equal(gaussian_filter(maps, 3.0).numpy(), whole.numpy())
    monkeypatch.setattr(_maps, "_UNFOLD_ELEMENTS", 3 * 36 * 33 * 25)  # 3 a batch
    np.testing.assert_array_equal(gaussian_filter(maps, 3.0).numpy(), whole.numpy())


def test_gaussian_filter_by_matrices_equals_convolution_in_float32(monkeypatch):
    # Maps up to 24 kernel lengths a side are smoothed by two matrix products.
    from skvqad import _maps, gaussian_filter

    maps = torch.rand(4, 96, 130, generator=torch.Generator().manual_seed(0))
    by_matrices = gaussian_filter(maps, 8.0)
    monkeypatch.setattr(_maps, "_MATMUL_TAPS", 0)
    by_convolution = gaussian_filter(maps, 8.0)
    assert by_matrices.dtype == torch.float32
    torch.testing.assert_close(by_matrices, by_convolution, rtol=0, atol=1e-6)
    # A radius beyond the map (reflected more than once) as well.
    huge = gaussian_filter(maps[:, :5, :7], 30.0)
    monkeypatch.setattr(_maps, "_MATMUL_TAPS", 10**6)
    torch.testing.assert_close(gaussian_filter(maps[:, :5, :7], 30.0), huge,
                               rtol=0, atol=1e-6)  # fmt: skip
