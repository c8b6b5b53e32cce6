"""The torch model and the VQ-VAE loss (Eq. 4), with gradients pinned by hand."""

import pytest
import torch

from skvqad import VQVAE, VQVAELoss, alignment_map, vq_vae_loss_terms
from skvqad._model import VectorQuantizer


@pytest.mark.parametrize("n_downsampling", [1, 2, 3])
def test_shapes(n_downsampling):
    torch.manual_seed(0)
    model = VQVAE(
        in_channels=3,
        hidden_channels=8,
        n_embeddings=10,
        embedding_dim=5,
        n_downsampling=n_downsampling,
        n_residual_layers=2,
    )
    x = torch.rand(2, 3, 32, 24)
    out = model(x)
    s = 2**n_downsampling
    assert out.logits.shape == (2, 3, 32, 24)
    assert out.z_e.shape == (2, 5, 32 // s, 24 // s)
    assert out.z_q.shape == out.z_e.shape
    assert out.indices.shape == (2, 32 // s, 24 // s)
    # The quantiser's by-product is exactly the public alignment map (Eq. 6).
    torch.testing.assert_close(out.alignment, alignment_map(out.z_e, model.codebook))
    assert model.codebook.shape == (10, 5)


def test_codebook_initialised_uniformly_in_one_over_m():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(n_embeddings=64, embedding_dim=8)
    weight = quantizer.codebook.weight
    assert weight.abs().max() <= 1 / 64
    assert weight.std() > 1 / 64 / 4  # not all zero


def _one_vector_two_codes():
    """z_e = (1, 2) and codes e0 = (0, 0), e1 = (1, 1): e1 is nearest (1 < 5)."""
    quantizer = VectorQuantizer(n_embeddings=2, embedding_dim=2)
    with torch.no_grad():
        quantizer.codebook.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    z_e = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1).requires_grad_(True)
    return quantizer, z_e


def test_nearest_code_and_its_distance():
    quantizer, z_e = _one_vector_two_codes()
    indices, sq = quantizer.nearest(z_e)
    assert indices.item() == 1
    assert sq.item() == pytest.approx(1.0)


def test_alignment_term_moves_only_the_selected_code():
    quantizer, z_e = _one_vector_two_codes()
    z_q, _, _ = quantizer(z_e)
    logits = torch.zeros(1, 1, 2, 2)
    _, alignment, _ = vq_vae_loss_terms(logits, torch.full((1, 1, 2, 2), 0.5), z_e, z_q)
    alignment.backward()
    assert alignment.item() == pytest.approx(1.0)  # ||(1,2) - (1,1)||^2
    # d/de1 ||sg[z] - e1||^2 = -2 (z - e1) = (0, -2); e0 and z_e untouched.
    expected = torch.tensor([[0.0, 0.0], [0.0, -2.0]])
    torch.testing.assert_close(quantizer.codebook.weight.grad, expected)
    assert z_e.grad is None or torch.all(z_e.grad == 0)


def test_commitment_term_moves_only_the_encoder():
    quantizer, z_e = _one_vector_two_codes()
    z_q, _, _ = quantizer(z_e)
    logits = torch.zeros(1, 1, 2, 2)
    _, _, commitment = vq_vae_loss_terms(
        logits, torch.full((1, 1, 2, 2), 0.5), z_e, z_q
    )
    commitment.backward()
    assert commitment.item() == pytest.approx(1.0)
    # d/dz ||z - sg[e1]||^2 = 2 (z - e1) = (0, 2); the codebook untouched.
    torch.testing.assert_close(z_e.grad.view(2), torch.tensor([0.0, 2.0]))
    assert quantizer.codebook.weight.grad is None or torch.all(
        quantizer.codebook.weight.grad == 0
    )


def test_full_loss_gradients_with_beta():
    quantizer, z_e = _one_vector_two_codes()
    z_q, _, _ = quantizer(z_e)
    logits = torch.zeros(1, 1, 2, 2, requires_grad=True)
    x = torch.full((1, 1, 2, 2), 0.5)
    loss = VQVAELoss(beta=0.25)(logits, x, z_e, z_q)
    loss.backward()
    torch.testing.assert_close(z_e.grad.view(2), torch.tensor([0.0, 0.5]))
    torch.testing.assert_close(
        quantizer.codebook.weight.grad, torch.tensor([[0.0, 0.0], [0.0, -2.0]])
    )
    # The likelihood term reaches the logits only; at logits 0 (lambda = 0.5)
    # and x = 0.5 its gradient is 0.5 - mean(lambda = 0.5) = 0.
    torch.testing.assert_close(logits.grad, torch.zeros_like(logits), atol=1e-5, rtol=0)


def test_straight_through_copies_decoder_gradient_to_encoder():
    """The decoder's gradient w.r.t. z_q reaches z_e unchanged, not the codebook."""
    torch.manual_seed(0)
    model = VQVAE(
        in_channels=1,
        hidden_channels=4,
        n_embeddings=3,
        embedding_dim=2,
        n_downsampling=1,
        n_residual_layers=0,
    )
    x = torch.rand(1, 1, 4, 4)
    z_e = model.encoder(x).detach().requires_grad_(True)
    z_q, _, _ = model.quantizer(z_e)
    z_st = z_e + (z_q - z_e).detach()
    weights = torch.randn_like(z_st)
    (z_st * weights).sum().backward()
    torch.testing.assert_close(z_e.grad, weights)
    assert model.quantizer.codebook.weight.grad is None


def test_nll_is_the_continuous_bernoulli_negative_log_likelihood():
    logits = torch.tensor([[[[-3.0, 0.0], [1e-4, 4.0]]]])
    x = torch.tensor([[[[0.1, 0.5], [0.9, 0.99]]]])
    nll, _, _ = vq_vae_loss_terms(
        logits, x, torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)
    )
    expected = -torch.distributions.ContinuousBernoulli(logits=logits).log_prob(x).sum()
    torch.testing.assert_close(nll, expected)
    # At lambda = 0.5 the density is uniform: log p = 0.
    assert torch.distributions.ContinuousBernoulli(logits=torch.tensor(0.0)).log_prob(
        torch.tensor(0.3)
    ).item() == pytest.approx(0.0, abs=1e-5)


def test_loss_finite_near_lambda_one_half():
    logits = torch.tensor([-1e-6, 0.0, 1e-6, 1e-3, -30.0, 30.0], requires_grad=True)
    x = torch.tensor([0.0, 0.5, 1.0, 0.2, 0.0, 1.0])
    nll, _, _ = vq_vae_loss_terms(
        logits[None, None, None],
        x[None, None, None],
        torch.zeros(1, 1, 1, 1),
        torch.zeros(1, 1, 1, 1),
    )
    nll.backward()
    assert torch.isfinite(nll)
    assert torch.isfinite(logits.grad).all()


def test_ema_update_by_hand():
    """One training step of decay 0.5 from counts 1 and sums = the codes."""
    quantizer = VectorQuantizer(n_embeddings=2, embedding_dim=2, ema_decay=0.5)
    with torch.no_grad():
        quantizer.codebook.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
        quantizer.ema_sums.copy_(quantizer.codebook.weight)
    assert not quantizer.codebook.weight.requires_grad
    # Two vectors select e1 = (1, 1): (1, 2) and (2, 1); none selects e0.
    z_e = torch.tensor([[1.0, 2.0], [2.0, 1.0]]).t().reshape(1, 2, 1, 2)
    quantizer.train()
    z_q, indices, _ = quantizer(z_e)
    assert indices.tolist() == [[[1, 1]]]
    # z_q is taken before the update.
    torch.testing.assert_close(z_q, torch.ones(1, 2, 1, 2))
    # counts: e0 0.5, e1 0.5 * 1 + 0.5 * 2 = 1.5; sums: e0 (0, 0),
    # e1 0.5 * (1, 1) + 0.5 * (3, 3) = (2, 2). Laplace smoothing (eps 1e-5)
    # barely moves e1 = (2, 2) / 1.5.
    torch.testing.assert_close(quantizer.ema_counts, torch.tensor([0.5, 1.5]))
    torch.testing.assert_close(
        quantizer.codebook.weight,
        torch.tensor([[0.0, 0.0], [4 / 3, 4 / 3]]),
        atol=1e-4,
        rtol=0,
    )
    torch.testing.assert_close(quantizer.epoch_counts, torch.tensor([0.0, 2.0]))
    # Evaluation mode changes nothing.
    quantizer.eval()
    before = quantizer.codebook.weight.clone()
    quantizer(z_e)
    torch.testing.assert_close(quantizer.codebook.weight, before)
    torch.testing.assert_close(quantizer.epoch_counts, torch.tensor([0.0, 2.0]))


@pytest.mark.parametrize("ema_decay", [None, 0.99])
def test_restart_moves_unused_codes_onto_encoder_outputs(ema_decay):
    torch.manual_seed(0)
    quantizer = VectorQuantizer(n_embeddings=4, embedding_dim=3, ema_decay=ema_decay)
    with torch.no_grad():
        quantizer.codebook.weight.copy_(torch.eye(4, 3) * 10)
    quantizer.train()
    z_e = torch.tensor([[10.0, 0.0, 0.0], [9.0, 1.0, 0.0]]).t().reshape(1, 3, 1, 2)
    quantizer(z_e)  # both select code 0; codes 1, 2, 3 are unused
    generator = torch.Generator().manual_seed(0)
    assert quantizer.restart_dead_codes(generator) == 3
    weight = quantizer.codebook.weight
    pool = z_e.reshape(3, 2).t()
    if ema_decay is None:  # the loss-trained code 0 is left as it was
        torch.testing.assert_close(weight[0], torch.tensor([10.0, 0.0, 0.0]))
    for code in (1, 2, 3):
        assert any(torch.equal(weight[code], row) for row in pool)
    assert torch.all(quantizer.epoch_counts == 0)
    if ema_decay is not None:
        torch.testing.assert_close(quantizer.ema_sums[1:], weight[1:])
        torch.testing.assert_close(quantizer.ema_counts[1:], torch.ones(3))
