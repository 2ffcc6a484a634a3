"""Latent-space de-biasing (Ramaswamy et al., CVPR 2021) as a dataset
wrapper; the functions that make the pairs are in
:mod:`.latent_debias_generator`."""
import copy
from typing import List, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import Compose
from mmpretrain.registry import DATASETS, MODELS

from .latent_debias_generator import (binarize, fit_plane,  # noqa: F401
                                      flip_protected, to_bgr_uint8,
                                      to_class_labels)

__all__ = ['LatentDebiasDataset']


@DATASETS.register_module()
class LatentDebiasDataset:
    """Latent-space de-biasing (Ramaswamy et al., CVPR 2021) as a dataset
    wrapper: the real training set plus generated pairs that decorrelate the
    target from the protected attribute.

    1. Sample ``num_fit_samples`` latents ``z`` from the generator's latent
       prior (its ``sample_latents(n, rng)`` where it has one, e.g. the
       ConvVAE's fitted mixture; ``N(0, I)`` otherwise), generate ``G(z)``,
       label them with the target and the protected scorer (binary
       attributes, see :func:`binarize`), and fit one linear hyperplane in
       ``z`` per attribute (``LogisticRegression`` or ``LinearSVC``), stored
       with unit normals in ``target_plane`` / ``protected_plane`` (a
       K-class target: K one-vs-rest planes).
    2. Sample ``num_pairs`` new latents ``z`` and make ``z'`` by
       :func:`flip_protected` (same target score, negated protected score).
    3. Label ``G(z)`` and ``G(z')`` with the target scorer (its class
       labels); ``pair_label='shared'`` (default, as in the paper) gives both
       the label of ``G(z)``, ``'independent'`` labels ``G(z')`` by itself.
    4. The dataset is ``real + [G(z_1), G(z'_1), ..., G(z_P), G(z'_P)]``;
       synthetic samples carry ``gt_label``, ``bias_label`` (the protected
       label by the protected scorer) and ``is_synthetic=True``; every sample
       gets its position in this dataset as ``sample_idx``.

    Args:
        dataset (dict | Dataset): The real training set.
        generator (dict | nn.Module): ``G`` (MODELS), with ``latent_dim`` and
            ``forward(z) -> images [N, C, H, W] in [0, 1]`` (RGB or grey),
            optionally ``sample_latents(n, rng) -> [n, latent_dim]``.
        target_scorer (dict | nn.Module): The target classifier ``h_t``
            (MODELS, images in [0, 1] -> ``[N]`` scores or ``[N, K]``
            logits), e.g. ``ClassifierScorer``.
        protected_scorer (dict | nn.Module): Scorer of the protected
            attribute, e.g. ``InkMassScorer``.
        num_pairs (int): Number of (z, z') pairs added. Defaults to 100.
        num_fit_samples (int): Latents used to fit the hyperplanes.
            Defaults to 1000.
        fit_method (str): ``'logistic'`` or ``'svm'``. Defaults to
            ``'logistic'``.
        target_positive_class (int, optional): Positive class of a binary
            target attribute when the target scorer gives ``[N, K]`` logits
            with ``K > 2``. Defaults to None: then the target is the
            K-class label and one plane per class is fitted; ``z'`` keeps all
            K target scores (see :func:`flip_protected`).
        protected_positive_class (int, optional): Same for the protected
            scorer. Defaults to None.
        target_threshold (float | str): Threshold of ``[N]`` target scores.
            Defaults to 0.0.
        protected_threshold (float | str): Threshold of ``[N]`` protected
            scores (``'median'``: of the fitting samples). Defaults to
            ``'median'``.
        pair_label (str): ``'shared'`` or ``'independent'``. Defaults to
            ``'shared'``.
        img_size (int | Sequence[int], optional): Resize generated images to
            this (H, W) (the real images' size). Defaults to None.
        synthetic_pipeline (list[dict], optional): Pipeline of the synthetic
            samples (their image is in ``results['img']``). Defaults to the
            real dataset's pipeline without its ``LoadImage*`` steps.
        protected_attribute (str, optional): Name of the attribute the flip
            changes (e.g. ``'color'``). It must agree with the protected
            scorer's ``attribute`` and the real dataset's metainfo
            ``protected_attribute`` where they name one (a clear error
            otherwise); the resolved name is in this dataset's metainfo
            (``protected_attribute``, with the real dataset's
            ``protected_key``) and in each synthetic sample's
            ``bias_factors``. Defaults to None: taken from the scorer or the
            dataset.
        seed (int): Seed of the latent sampling. Defaults to 0.
        batch_size (int): Generator/scorer batch size. Defaults to 256.
        lazy_init (bool): Defer the generation to :meth:`full_init`.
            Defaults to False.
    """

    def __init__(self,
                 dataset,
                 generator,
                 target_scorer,
                 protected_scorer,
                 num_pairs: int = 100,
                 num_fit_samples: int = 1000,
                 fit_method: str = 'logistic',
                 target_positive_class: Optional[int] = None,
                 protected_positive_class: Optional[int] = None,
                 target_threshold: Union[float, str] = 0.0,
                 protected_threshold: Union[float, str] = 'median',
                 pair_label: str = 'shared',
                 img_size=None,
                 synthetic_pipeline: Optional[List[dict]] = None,
                 protected_attribute: Optional[str] = None,
                 seed: int = 0,
                 batch_size: int = 256,
                 lazy_init: bool = False):
        if fit_method not in ('logistic', 'svm'):
            raise ValueError("LatentDebiasDataset: fit_method must be "
                             f"'logistic' or 'svm', got {fit_method!r}")
        if pair_label not in ('shared', 'independent'):
            raise ValueError("LatentDebiasDataset: pair_label must be "
                             f"'shared' or 'independent', got {pair_label!r}")
        if num_pairs < 0 or num_fit_samples < 2:
            raise ValueError(
                f'LatentDebiasDataset: num_pairs ({num_pairs}) must be >= 0 '
                f'and num_fit_samples ({num_fit_samples}) >= 2')
        self.dataset = DATASETS.build(dataset) if isinstance(
            dataset, dict) else dataset
        self.generator = MODELS.build(generator) if isinstance(
            generator, dict) else generator
        if not isinstance(getattr(self.generator, 'latent_dim', None), int):
            raise TypeError(
                'LatentDebiasDataset: generator '
                f'{type(self.generator).__name__}'
                ' must have an int attribute `latent_dim` and forward(z) -> '
                'images in [0, 1].')
        self.target_scorer = MODELS.build(target_scorer) if isinstance(
            target_scorer, dict) else target_scorer
        self.protected_scorer = MODELS.build(protected_scorer) if isinstance(
            protected_scorer, dict) else protected_scorer
        self.protected_attribute = self._resolve_protected_attribute(
            protected_attribute)
        self.num_pairs = num_pairs
        self.num_fit_samples = num_fit_samples
        self.fit_method = fit_method
        self.target_positive_class = target_positive_class
        self.protected_positive_class = protected_positive_class
        self.target_threshold = target_threshold
        self.protected_threshold = protected_threshold
        self.pair_label = pair_label
        if isinstance(img_size, int):
            img_size = (img_size, img_size)
        self.img_size = img_size
        self.seed = seed
        self.batch_size = batch_size
        if synthetic_pipeline is None:
            transforms = getattr(getattr(self.dataset, 'pipeline', None),
                                 'transforms', [])
            synthetic_pipeline = [
                t for t in transforms
                if not type(t).__name__.startswith('LoadImage')]
        self.synthetic_pipeline = Compose(synthetic_pipeline)
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    def _resolve_protected_attribute(self, name: Optional[str]):
        """The one attribute named by the config, the protected scorer
        (``attribute``) and the real dataset (metainfo
        ``protected_attribute``); a ValueError when two differ."""
        names = dict(
            protected_attribute=name,
            scorer=getattr(self.protected_scorer, 'attribute', None),
            dataset=getattr(self.dataset, 'metainfo',
                            {}).get('protected_attribute'))
        given = {k: v for k, v in names.items() if v is not None}
        if len(set(given.values())) > 1:
            raise ValueError(
                'LatentDebiasDataset: the attribute the flip changes must be '
                'the protected attribute of the data (and of the fairness '
                f'metric), but they differ: {given} (config '
                '`protected_attribute`, the protected scorer\'s `attribute`, '
                'the real dataset\'s metainfo `protected_attribute`). Use a '
                'protected scorer of the dataset\'s protected attribute.')
        return next(iter(given.values()), None)

    @property
    def metainfo(self) -> dict:
        meta = copy.deepcopy(getattr(self.dataset, 'metainfo', {}))
        if self.protected_attribute is not None:
            meta['protected_attribute'] = self.protected_attribute
            meta.setdefault('protected_key', 'bias_label')
        return meta

    # ------------------------------------------------------------ generation
    @torch.no_grad()
    def _generate(self, z: np.ndarray) -> torch.Tensor:
        self.generator.eval()
        out = []
        for i in range(0, len(z), self.batch_size):
            zb = torch.as_tensor(z[i:i + self.batch_size], dtype=torch.float)
            imgs = self.generator(zb).float().clamp(0, 1)
            if self.img_size is not None and tuple(
                    imgs.shape[-2:]) != self.img_size:
                imgs = F.interpolate(imgs, size=self.img_size,
                                     mode='bilinear', align_corners=False)
            out.append(imgs)
        return torch.cat(out) if out else torch.zeros(0)

    @torch.no_grad()
    def _score(self, scorer, imgs: torch.Tensor) -> torch.Tensor:
        if hasattr(scorer, 'eval'):
            scorer.eval()
        return torch.cat([
            scorer(imgs[i:i + self.batch_size])
            for i in range(0, len(imgs), self.batch_size)
        ])

    def sample_latents(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` latents from the generator's prior (``N(0, I)`` when it
        has no ``sample_latents``)."""
        sample = getattr(self.generator, 'sample_latents', None)
        if sample is None:
            return rng.standard_normal((n, self.generator.latent_dim))
        return np.asarray(sample(n, rng), dtype=np.float64)

    def _fit_plane(self, z: np.ndarray, labels: np.ndarray, what: str):
        return fit_plane(z, labels, self.fit_method, what)

    def full_init(self) -> None:
        """Fit the hyperplanes and generate the pairs (once)."""
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        rng = np.random.default_rng(self.seed)
        d = self.generator.latent_dim
        z_fit = self.sample_latents(self.num_fit_samples, rng)
        imgs = self._generate(z_fit)
        s_t = self._score(self.target_scorer, imgs)
        self.target_threshold_value = (
            float(s_t.float().median()) if self.target_threshold == 'median'
            and s_t.dim() == 1 else self.target_threshold)
        if s_t.dim() == 2 and s_t.size(1) > 2 and \
                self.target_positive_class is None:
            y_t = to_class_labels(s_t)  # multi-class: one plane per class
        else:
            y_t = binarize(s_t, self.target_threshold_value,
                           self.target_positive_class, 'target')
        s_g = self._score(self.protected_scorer, imgs)
        # 'median' is resolved once, on the fitting samples, and reused for
        # the bias labels of the pairs
        self.protected_threshold_value = (
            float(s_g.float().median()) if self.protected_threshold == 'median'
            and s_g.dim() == 1 else self.protected_threshold)
        y_g = binarize(s_g, self.protected_threshold_value,
                       self.protected_positive_class, 'protected')
        self.target_plane = self._fit_plane(z_fit, y_t, 'target')
        self.protected_plane = self._fit_plane(z_fit, y_g, 'protected')

        z = self.sample_latents(self.num_pairs, rng)
        z_flip = flip_protected(z, *self.target_plane, *self.protected_plane)
        self.latents, self.latents_flipped = z, z_flip
        pairs = np.stack([z, z_flip], axis=1).reshape(-1, d)  # z1, z1', ...
        imgs = self._generate(pairs)
        self.synthetic_infos = []
        if len(pairs):
            labels = to_class_labels(self._score(self.target_scorer, imgs),
                                     self.target_threshold_value)
            if self.pair_label == 'shared':
                labels[1::2] = labels[0::2]
            bias = binarize(self._score(self.protected_scorer, imgs),
                            self.protected_threshold_value,
                            self.protected_positive_class, 'protected')
            arr = to_bgr_uint8(imgs)
            for i in range(len(pairs)):
                info = dict(img=arr[i], gt_label=int(labels[i]),
                            bias_label=int(bias[i]), is_synthetic=True,
                            pair_idx=i // 2, flipped=bool(i % 2))
                if self.protected_attribute is not None:
                    info['bias_factors'] = {
                        self.protected_attribute: int(bias[i])}
                self.synthetic_infos.append(info)
        self._fully_initialized = True

    # --------------------------------------------------------------- access
    @property
    def num_real(self) -> int:
        return len(self.dataset)

    def __len__(self) -> int:
        if not self._fully_initialized:
            self.full_init()
        return self.num_real + len(self.synthetic_infos)

    def get_data_info(self, idx: int) -> dict:
        """Annotations of sample ``idx`` (real first, then the pairs)."""
        if not self._fully_initialized:
            self.full_init()
        if idx < 0:
            idx += len(self)
        if idx < self.num_real:
            info = self.dataset.get_data_info(idx)
        else:
            info = copy.deepcopy(self.synthetic_infos[idx - self.num_real])
        info['sample_idx'] = idx
        return info

    def __getitem__(self, idx: int):
        if idx < 0:
            idx += len(self)
        if idx < self.num_real:
            return self.dataset[idx]  # real samples keep their index
        return self.synthetic_pipeline(self.get_data_info(idx))
