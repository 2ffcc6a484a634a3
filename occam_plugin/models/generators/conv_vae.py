from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

__all__ = ['ConvVAE']


@MODELS.register_module()
class ConvVAE(BaseModule):
    """A small convolutional VAE; its decoder is the generator ``G(z)``.

    The plugin's own generator for latent-space de-biasing (Ramaswamy et al.,
    CVPR 2021), trained on the offline MNIST digits by
    ``tools/train_generator.py``. Any MODELS-registered generator with a
    ``latent_dim`` attribute and ``forward(z) -> images in [0, 1]`` can take
    its place (see docs/methods.md).

    Architecture (28 px): encoder conv(4, s2) 32 -> conv(4, s2) 64 -> linear
    to ``mu``/``logvar``; decoder linear -> 64 x 7 x 7 -> deconv(4, s2) 32 ->
    deconv(4, s2) ``out_channels`` -> sigmoid.

    Latents are drawn by :meth:`sample_latents`: from ``N(0, I)``, or, once
    :meth:`set_latent_prior` has fitted one (``tools/train_generator.py
    --prior-components K``), from a Gaussian mixture fitted to the posterior
    means of the training images (ex-post density estimation, Ghosh et al.,
    ICLR 2020): a VAE's aggregate posterior has holes where ``N(0, I)`` puts
    mass, and the decoder makes no digit there. The mixture is a buffer of
    the state dict, so the checkpoint carries it.

    Args:
        latent_dim (int): Size of ``z``. Defaults to 16.
        out_channels (int): Channels of the images. Defaults to 1 (grey
            digits).
        width (int): Channels of the first conv layer (the second has twice
            as many). Defaults to 32.
        checkpoint (str, optional): A state dict saved by
            ``tools/train_generator.py`` (loaded with ``weights_only=True``;
            with the latent prior it holds, if any). Defaults to None
            (random weights).
        init_cfg (dict, optional): Initialization config.
    """

    img_size = 28

    def __init__(self, latent_dim: int = 16, out_channels: int = 1,
                 width: int = 32, checkpoint: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if latent_dim < 1 or width < 1:
            raise ValueError(f'ConvVAE: latent_dim ({latent_dim}) and width '
                             f'({width}) must be >= 1')
        self.latent_dim = latent_dim
        self.out_channels = out_channels
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(out_channels, w, 4, 2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.ReLU(inplace=True),
            nn.Flatten())
        self.fc_mu = nn.Linear(2 * w * 7 * 7, latent_dim)
        self.fc_logvar = nn.Linear(2 * w * 7 * 7, latent_dim)
        self.fc_dec = nn.Linear(latent_dim, 2 * w * 7 * 7)
        self.decoder = nn.Sequential(
            nn.ReLU(inplace=True), nn.Unflatten(1, (2 * w, 7, 7)),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w, out_channels, 4, 2, 1), nn.Sigmoid())
        if checkpoint is not None:
            state = torch.load(checkpoint, map_location='cpu',
                               weights_only=True)
            state = state.get('state_dict', state)
            if 'prior_weights' in state:  # the prior is the checkpoint's
                self._register_prior(state['prior_weights'].numel())
            try:
                self.load_state_dict(state)
            except RuntimeError as e:
                raise RuntimeError(
                    f'ConvVAE: checkpoint {checkpoint} does not match '
                    f'latent_dim={latent_dim}, out_channels={out_channels}, '
                    f'width={width}: {e}') from e

    def _register_prior(self, components: int) -> None:
        d = self.latent_dim
        for name, shape in (('prior_weights', (components, )),
                            ('prior_means', (components, d)),
                            ('prior_scale_tril', (components, d, d))):
            self.register_buffer(name, torch.zeros(shape))

    @property
    def prior_components(self) -> int:
        """Components of the fitted latent prior (0: ``N(0, I)``)."""
        weights = getattr(self, 'prior_weights', None)
        return 0 if weights is None else weights.numel()

    def set_latent_prior(self, weights, means, covariances) -> None:
        """Use the Gaussian mixture ``(weights [K], means [K, d],
        covariances [K, d, d])`` as the latent prior of
        :meth:`sample_latents` (e.g. sklearn's ``GaussianMixture`` fitted to
        the posterior means of the training images)."""
        weights = torch.as_tensor(np.asarray(weights), dtype=torch.float)
        means = torch.as_tensor(np.asarray(means), dtype=torch.float)
        cov = torch.as_tensor(np.asarray(covariances), dtype=torch.float)
        k, d = weights.numel(), self.latent_dim
        if means.shape != (k, d) or cov.shape != (k, d, d):
            raise ValueError(
                f'ConvVAE.set_latent_prior: expected weights [K], means '
                f'[K, {d}], covariances [K, {d}, {d}]; got '
                f'{list(weights.shape)}, {list(means.shape)}, '
                f'{list(cov.shape)}')
        self._register_prior(k)
        self.prior_weights.copy_(weights / weights.sum())
        self.prior_means.copy_(means)
        self.prior_scale_tril.copy_(torch.linalg.cholesky(cov.double())
                                    .float())

    def sample_latents(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` latents ``[n, latent_dim]`` (float64) from the latent prior,
        drawn with ``rng``: ``N(0, I)``, or the fitted mixture."""
        d = self.latent_dim
        eps = rng.standard_normal((n, d))
        if self.prior_components == 0:
            return eps
        weights = self.prior_weights.double().numpy()
        comp = rng.choice(len(weights), size=n, p=weights / weights.sum())
        means = self.prior_means.double().numpy()[comp]
        tril = self.prior_scale_tril.double().numpy()[comp]
        return means + np.einsum('nij,nj->ni', tril, eps)

    def encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Images ``[N, C, 28, 28]`` in [0, 1] -> ``(mu, logvar)``."""
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)``: latents ``[N, latent_dim]`` -> images ``[N, C, 28, 28]``
        in [0, 1]."""
        if z.dim() != 2 or z.size(1) != self.latent_dim:
            raise ValueError(f'ConvVAE: z must have shape [N, '
                             f'{self.latent_dim}], got {list(z.shape)}')
        return self.decoder(self.fc_dec(z))

    def vae_loss(self, x: torch.Tensor, beta: float = 1.0) -> dict:
        """ELBO terms per image: binary CE reconstruction + beta * KL."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = self(z)
        n = x.size(0)
        rec = F.binary_cross_entropy(recon, x, reduction='sum') / n
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / n
        return dict(loss_rec=rec, loss_kl=beta * kl)
