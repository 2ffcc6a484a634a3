"""BAR (real photographs): ResNet-18 vs OccamResNet-18 and the methods that
need no bias labels. Not a test.

    python benchmarks/bar.py                          # CPU protocol, 3 seeds
    python benchmarks/bar.py --methods erm lff sd     # + LfF and SD rows
    python benchmarks/bar.py --select                 # the protocol choice
    python benchmarks/bar.py --paper-scale            # 224 px, 90 epochs (GPU)
    python benchmarks/bar.py --report-only            # table of finished runs

Each run is ``tools/train.py`` on a shipped config (``configs/{resnet,
occamnets,lff}/*_bar-small.py``, with ``--cfg-options`` for the seed and the
protocol only), validated every epoch on BAR's val split (every 10th image
of a class of ``train/``, see the BAR dataset), then ``tools/test.py`` on the
test split twice: with the val-chosen checkpoint (``best_accuracy_top1_*``)
and with the last one. Test accuracy, per-class accuracy and exit statistics
are computed from the predictions that ``tools/test.py --out`` dumps; nothing
is chosen on test.

A finished run (its last epoch's checkpoint and both test results on disk)
is reused, an unfinished one resumes from its latest checkpoint, so the table
fills over several sittings; ``--jobs N`` runs N trainings at once, each with
``cpu_count / N`` threads. With ``--results-md`` the table replaces this
script's section of that file (and ``--select``'s its own).
"""
import argparse
import ast
import datetime
import glob
import json
import os
import os.path as osp
import re
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import (PYTHON, check_reference, import_reference,  # noqa: E402
                    machine, mean_std, reference_config, write_section)
from occam_plugin.cli import (newest, read_metrics,  # noqa: E402
                              read_records, run_commands)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLASSES = ('climbing', 'diving', 'fishing', 'pole vaulting', 'racing',
           'throwing')

#: method -> the --cfg-options that switch it on the ERM config; the
#: 'no-*' and 'exits-*' ones are OccamNet ablations. 'exits-234' drops the
#: exit after stage 1 (28 px at 112 px input), which the shipped model trains
#: (detached from the trunk) but never takes at inference
#: (min_inference_exit=1): the exits that predict stay those after stages
#: 2-4, with the gate thresholds they had
METHOD_OPTIONS = {
    'sd': ['model.head.method.type=SpectralDecoupling'],
    'no-cs': ['model.head.cam_suppression=None'],
    'no-gw': ['model.head.gate_weighting=False'],
    'exits-234': ['model.backbone.out_indices=(1,2,3)',
                  'model.neck.detach_exits=()',
                  'model.head.min_inference_exit=0',
                  'model.head.gate_loss.thresholds=(0.6,0.7,0.8)'],
}


def first_exit_stage(method):
    """The stage (0-based) of a method's first exit: the smallest backbone
    ``out_indices`` its options set (0, the shipped four exits, if none)."""
    for opt in METHOD_OPTIONS.get(method, ()):
        key, _, value = opt.partition('=')
        if key == 'model.backbone.out_indices':
            return min(ast.literal_eval(value))
    return 0


def cpu_configs(width):
    """(model, method) -> config of the CPU protocol at base width
    ``width`` (16 or 32): ERM, LfF, and the methods and ablations that are
    options on the ERM config."""
    w = f'w{width}_1xb64_60e_bar-small.py'
    configs = {
        ('resnet', 'erm'): f'configs/resnet/resnet18-{w}',
        ('occam', 'erm'): f'configs/occamnets/occamnets_resnet18-{w}',
        ('resnet', 'lff'): f'configs/lff/lff_resnet18-{w}',
        ('occam', 'lff'): f'configs/lff/lff_occamnets-resnet18-{w}',
    }
    configs[('resnet', 'sd')] = configs[('resnet', 'erm')]
    for method in METHOD_OPTIONS:
        configs[('occam', method)] = configs[('occam', 'erm')]
    return configs


PAPER_CONFIGS = {
    ('resnet', 'erm'): 'configs/resnet/resnet18_1xb128_90e_bar.py',
    ('occam', 'erm'): 'configs/occamnets/occamnets_resnet18_1xb128_90e_bar.py',
}

#: protocol -> (configs, epochs, image size or None for the config's).
#: Width 32 and 160 px are each about 2 x a width-16, 112 px epoch, so the
#: first three cost about the same per run; the first is the CPU protocol of
#: the zoo, chosen with --select (docs/results.md). The two 60-epoch
#: candidates at twice its cost are the choice of a protocol that might
#: learn the action (``--select --protocols ...``): val chose
#: ``w32-112px-60e``, whose configs are the ``-w32`` ones
PROTOCOLS = {
    'w16-112px-60e': (cpu_configs(16), 60, None),
    'w32-112px-30e': (cpu_configs(32), 30, None),
    'w16-160px-30e': (cpu_configs(16), 30, 160),
    'w32-112px-60e': (cpu_configs(32), 60, None),
    'w16-160px-60e': (cpu_configs(16), 60, 160),
    'paper': (PAPER_CONFIGS, 90, None),
}
CPU_PROTOCOL = 'w16-112px-60e'
SELECT_PROTOCOLS = ('w16-112px-60e', 'w32-112px-30e', 'w16-160px-30e')

NAMES = dict(resnet='ResNet-18', occam='OccamResNet-18')
METHOD_NAMES = {'erm': 'ERM', 'lff': 'LfF', 'sd': 'SD',
                'no-cs': 'ERM, no CAM suppression',
                'no-gw': 'ERM, no gate weighting',
                'exits-234': 'ERM, exits after stages 2-4 only'}


def run_dir(work_root, protocol, model, method, seed):
    return osp.join(work_root, protocol, f'{model}-{method}_seed{seed}')


def options(protocol, model, method, seed, data_root, epochs, extra=(),
            jobs=1):
    """--cfg-options of one run: the seed, the data and the protocol
    (``jobs``: the runs sharing the machine, which size the paper-scale
    loaders)."""
    _, _, size = PROTOCOLS[protocol]
    config_epochs = 90 if protocol == 'paper' else PROTOCOLS[CPU_PROTOCOL][1]
    opts = [f'randomness.seed={seed}']
    if data_root:
        opts += [f'{loader}.dataset.data_root={data_root}'
                 for loader in ('train_dataloader', 'val_dataloader',
                                'test_dataloader')]
    if size:
        # train: RandomResizedCrop; val/test: ResizeEdge 8/7, CenterCrop
        opts.append(f'train_dataloader.dataset.pipeline.1.scale={size}')
        for loader in ('val_dataloader', 'test_dataloader'):
            opts += [f'{loader}.dataset.pipeline.1.scale={size * 8 // 7}',
                     f'{loader}.dataset.pipeline.2.crop_size={size}']
    if epochs != config_epochs:
        # the lr steps keep their place (5/9 and 7/9 of the epochs)
        opts += [f'train_cfg.max_epochs={epochs}',
                 'param_scheduler.milestones=[{},{}]'.format(
                     max(1, epochs * 5 // 9), max(1, epochs * 7 // 9))]
    opts += METHOD_OPTIONS.get(method, [])
    if protocol == 'paper':
        opts += paper_speed_options(jobs)
    return opts + list(extra)


def paper_speed_options(jobs=1):
    """The paper-scale configs made fast, same data and model: decoded
    images kept in memory by each (persistent) loader worker, workers sized
    to the CPUs a run gets, channels-last batches, and a checkpoint to
    resume from every 10th epoch instead of every epoch (on a GPU an
    epoch takes seconds; the best and the last are saved as before)."""
    workers = max(1, (os.cpu_count() or 2) // max(1, jobs) - 1)
    opts = ['data_preprocessor.type=ChannelsLastDataPreprocessor',
            'default_hooks.checkpoint.interval=10']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.pipeline.0.cache_decoded=True',
                 f'{loader}.num_workers={workers}',
                 f'{loader}.persistent_workers=True']
    return opts


def finished_training(wd, epochs):
    return osp.isfile(osp.join(wd, f'epoch_{epochs}.pth'))


def best_checkpoint(wd):
    found = sorted(glob.glob(osp.join(wd, 'best_accuracy_top1_epoch_*.pth')))
    return found[-1] if found else None


def val_curve(wd):
    """{epoch: val top-1} over every training log folder of ``wd``."""
    curve = {}
    for path in sorted(glob.glob(osp.join(wd, '2*', 'vis_data',
                                          'scalars.json'))):
        for rec in read_records(path, 'accuracy/top1'):
            curve[int(rec['step'])] = rec['accuracy/top1']
    return curve


_STAMP = re.compile(r'^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) - mmengine')


def train_seconds(wd):
    """Wall time of the training, from the first to the last line of each
    training log of ``wd`` (a resumed run has several)."""
    total = 0.0
    for log in glob.glob(osp.join(wd, '2*', '2*.log')):
        stamps = []
        with open(log, encoding='utf-8', errors='replace') as f:
            for line in f:
                m = _STAMP.match(line)
                if m:
                    stamps.append(m.group(1))
        if len(stamps) >= 2:
            fmt = '%Y/%m/%d %H:%M:%S'
            total += (datetime.datetime.strptime(stamps[-1], fmt) -
                      datetime.datetime.strptime(stamps[0], fmt)
                      ).total_seconds()
    return total


_ITER = re.compile(r'Epoch\(train\)\s+\[\d+\]\[\s*\d+/(\d+)\].*?'
                   r'\btime: ([\d.]+)')


def fastest_epoch_seconds(wd):
    """The shortest time an epoch of this run would take at its fastest
    logged pace: the smallest logged seconds per iteration (mmengine's mean
    over the last logged iterations) x iterations per epoch. Runs that
    share the CPUs with others are slower over the whole run; this is what
    the protocol costs on the machine when it is not shared."""
    best, iters = None, None
    for log in glob.glob(osp.join(wd, '2*', '2*.log')):
        with open(log, encoding='utf-8', errors='replace') as f:
            for line in f:
                m = _ITER.search(line)
                if m:
                    iters, t = int(m.group(1)), float(m.group(2))
                    best = t if best is None else min(best, t)
    return None if best is None else best * iters


def summarise_predictions(preds, exit_metrics):
    """Accuracy, per-class accuracy and exit statistics of a test run."""
    n = len(preds)
    gts = [int(p['gt_label']) for p in preds]
    labels = [int(p['pred_label']) for p in preds]
    correct = [g == p for g, p in zip(gts, labels)]
    per_class = {}
    for c, name in enumerate(CLASSES):
        idx = [i for i, g in enumerate(gts) if g == c]
        per_class[name] = (100.0 * sum(correct[i] for i in idx) / len(idx)
                           if idx else None)
    pred_share = {name: 100.0 * sum(p == c for p in labels) / n
                  for c, name in enumerate(CLASSES)}
    out = dict(n=n, acc=100.0 * sum(correct) / n, per_class=per_class,
               pred_share=pred_share)
    if exit_metrics:
        out['exits'] = {k.split('/', 1)[1]: v for k, v in
                        exit_metrics.items() if k.startswith('exit/')}
    return out


def one(args):
    """Train (or resume, or reuse) one run, then test it twice."""
    from occam_plugin.evaluation import load_predictions
    protocol, model, method, seed = (args.one[0], args.one[1], args.one[2],
                                     int(args.one[3]))
    configs, epochs, _ = PROTOCOLS[protocol]
    epochs = args.epochs or epochs
    cfg = osp.join(REPO, configs[(model, method)])
    wd = run_dir(args.work_root, protocol, model, method, seed)
    opts = options(protocol, model, method, seed, args.data_root, epochs,
                   args.extra_options, args.jobs)
    if args.amp:  # bf16 autocast (mmengine's AmpOptimWrapper, --amp)
        opts.append('optim_wrapper.dtype=bfloat16')
    if not finished_training(wd, epochs):
        resume = ['--resume'] if glob.glob(osp.join(wd, 'epoch_*.pth')) \
            else []
        cmd = [PYTHON, osp.join(REPO, 'tools', 'train.py'), cfg,
               '--work-dir', wd, *resume, *(['--amp'] if args.amp else []),
               '--cfg-options', *opts]
        print(' '.join(cmd), flush=True)
        rc = os.spawnv(os.P_WAIT, PYTHON, cmd)
        if rc:
            sys.exit(f'training {wd} exited {rc}')
    result = dict(protocol=protocol, model=model, method=method, seed=seed,
                  config=configs[(model, method)], options=opts,
                  machine=machine(),
                  train_seconds=train_seconds(wd),
                  fastest_epoch_seconds=fastest_epoch_seconds(wd),
                  epochs=epochs,
                  val=val_curve(wd))
    best = best_checkpoint(wd)
    result['best_epoch'] = int(re.search(r'epoch_(\d+)', best).group(1))
    tests = [('best', best, []),
             ('last', osp.join(wd, f'epoch_{epochs}.pth'), []),
             # the same weights on their own training images (test
             # pipeline): how well the training set (its places) is fit
             ('best_on_train', best, ['test_dataloader.dataset.split=train'])]
    if model == 'occam':
        # the val-chosen weights with every sample taken to the last exit:
        # what the early exits cost or bring on test
        head = 'model.debiased_model.head' if method == 'lff' else \
            'model.head'
        last_exit = 3 - first_exit_stage(method)  # 4 or 3 exits
        tests.append(('best_last_exit', best,
                      [f'{head}.min_inference_exit={last_exit}']))
    for tag, ckpt, retest in tests:
        out_dir = osp.join(wd, f'test_{tag}')
        preds = osp.join(out_dir, 'preds.pkl')
        if not osp.isfile(preds):
            os.makedirs(out_dir, exist_ok=True)
            cmd = [PYTHON, osp.join(REPO, 'tools', 'test.py'), cfg, ckpt,
                   '--work-dir', out_dir, '--out', preds,
                   '--cfg-options', *opts, *retest]
            print(' '.join(cmd), flush=True)
            rc = os.spawnv(os.P_WAIT, PYTHON, cmd)
            if rc:
                sys.exit(f'testing {ckpt} exited {rc}')
        exit_file = newest(osp.join(out_dir, '2*', 'exit_metrics.json'))
        exit_metrics = read_metrics(osp.dirname(exit_file), (
            'exit_metrics.json', )) if exit_file else None
        result[f'test_{tag}'] = summarise_predictions(
            load_predictions(preds), exit_metrics)
        result[f'test_{tag}']['checkpoint'] = osp.basename(ckpt)
    with open(osp.join(wd, 'bar_result.json'), 'w') as f:
        json.dump(result, f, indent=2)


def load_result(wd):
    path = osp.join(wd, 'bar_result.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def complete(result):
    """A result with every test this script makes (rerunning ``--one``
    adds a missing test without training)."""
    return result is not None and 'test_best_on_train' in result and \
        'fastest_epoch_seconds' in result and (
            result['model'] != 'occam' or 'test_best_last_exit' in result)


def kendall_tau(xs, ys):
    """Kendall's tau-a of two equally long sequences (None if < 2)."""
    n = len(xs)
    if n < 2:
        return None
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            d = (xs[i] - xs[j]) * (ys[i] - ys[j])
            s += (d > 0) - (d < 0)
    return s / (n * (n - 1) / 2)


def fmt(v, digits=1):
    return '-' if v is None else f'{v:.{digits}f}'


def exit_columns(method, exits):
    """The exit cells of one row of the exits table, from the exit
    metrics of its runs (means over them): the share of the test samples
    that leave at exits 1-3 (with their accuracy), the accuracy of exits
    0-3 on all samples, the expected compute. Exit k is the one after stage
    k + 1; the exits-234 model's exits 0-2 are after stages 2-4, so they
    fill columns 1-3 and its exit-0 column is '-'."""
    def m(key):
        vs = [e[key] for e in exits if e.get(key) is not None]
        return statistics.mean(vs) if vs else None
    first = first_exit_stage(method)
    shares = [f'{fmt(m(f"share_e{k - first}"))} '
              f'({fmt(m(f"acc_exited_e{k - first}"))})' for k in (1, 2, 3)]
    accs = ' / '.join(fmt(m(f'acc_e{k - first}')) if k >= first else '-'
                      for k in range(4))
    return shares, accs, fmt(m('expected_compute'), 3)


def render(results, args, command, protocol):
    """The markdown section: one table and its readings."""
    rows = {}
    for r in results:
        rows.setdefault((r['model'], r['method']), []).append(r)
    machines = sorted({r['machine'] for r in results if r.get('machine')})
    title = ('paper scale (224 px, width 58, 90 epochs)' if
             protocol == 'paper' else f'CPU protocol `{protocol}`')
    lines = [
        f'## BAR (real photographs), {title}: ResNet-18 vs OccamResNet-18 '
        '(`benchmarks/bar.py`)', '',
        f'Command: `{command}`', '',
        # where the runs trained (a report can be made elsewhere)
        f'Machine: {"; ".join(machines) or machine()}; '
        f'{datetime.date.today()}; protocol '
        f'`{protocol}`, {len(results)} finished runs. Validation (and the '
        'choice of the val checkpoint) on the val split carved out of '
        '`train/`; test = the 654 images of `test/`, read once per '
        'checkpoint. Train time: the wall time of the run (with other runs '
        'sharing the CPUs it is longer) and the time at its fastest logged '
        'pace (what the run takes on CPUs it does not share).', '',
        '| model | method | seeds | test acc, val-chosen | per seed | '
        'test acc, last | per seed | val acc (chosen) | train acc (chosen) '
        '| best epoch | train min / run | img/s | train min at the fastest '
        'pace |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for (model, method), rs in sorted(rows.items(), key=lambda kv: (
            list(METHOD_NAMES).index(kv[0][1]), kv[0][0] != 'resnet')):
        rs = sorted(rs, key=lambda r: r['seed'])
        best = [r['test_best']['acc'] for r in rs]
        last = [r['test_last']['acc'] for r in rs]
        vals = [r['val'][str(r['best_epoch'])] for r in rs]
        on_train = [r['test_best_on_train']['acc'] for r in rs]
        minutes = [r['train_seconds'] / 60 for r in rs]
        fastest = [r['epochs'] * r['fastest_epoch_seconds'] / 60 for r in rs
                   if r.get('fastest_epoch_seconds')]
        n_train = 1745
        speed = [n_train * r['epochs'] / r['train_seconds'] for r in rs
                 if r['train_seconds']]
        lines.append(
            f'| {NAMES[model]} | {METHOD_NAMES[method]} | '
            f'{",".join(str(r["seed"]) for r in rs)} | {mean_std(best)} | '
            f'{" / ".join(fmt(v) for v in best)} | {mean_std(last)} | '
            f'{" / ".join(fmt(v) for v in last)} | {mean_std(vals)} | '
            f'{mean_std(on_train)} | '
            f'{" / ".join(str(r["best_epoch"]) for r in rs)} | '
            f'{mean_std(minutes, 1)} | {mean_std(speed, 0)} | '
            f'{mean_std(fastest, 1)} |')
    # the target: OccamResNet-18 ahead of ResNet-18 in every seed
    pairs = {}
    for r in results:
        if r['method'] == 'erm':
            pairs.setdefault(r['seed'], {})[r['model']] = r
    both = {s: p for s, p in pairs.items() if len(p) == 2}
    if both:
        lines.append('')
        for tag, what in (('best', 'val-chosen'), ('last', 'last')):
            diffs = [both[s]['occam'][f'test_{tag}']['acc'] -
                     both[s]['resnet'][f'test_{tag}']['acc']
                     for s in sorted(both)]
            ahead = sum(d > 0 for d in diffs)
            lines.append(
                f'- OccamResNet-18 - ResNet-18 ({what} checkpoints), per '
                f'seed: {" / ".join(f"{d:+.1f}" for d in diffs)}; ahead in '
                f'{ahead} of {len(diffs)} seeds.')
    # per-class test accuracy
    lines += ['', 'Per-class test accuracy and the share of the test images '
              'predicted as each class (val-chosen checkpoints, mean over '
              'seeds; the true shares are 16.1 / 24.3 / 6.4 / 20.0 / 20.2 / '
              '13.0):',
              '', '| model | method | ' + ' | '.join(CLASSES) + ' |',
              '|---|---|' + '---|' * len(CLASSES)]
    for (model, method), rs in sorted(rows.items()):
        for key, what in (('per_class', 'accuracy'),
                          ('pred_share', 'share of predictions')):
            cells = []
            for c in CLASSES:
                # None: no test image of the class (a test's subset)
                vs = [r['test_best'][key][c] for r in rs
                      if r['test_best'][key][c] is not None]
                cells.append(fmt(statistics.mean(vs)) if vs else '-')
            lines.append(f'| {NAMES[model]} | {METHOD_NAMES[method]}, '
                         f'{what} | ' + ' | '.join(cells) + ' |')
    # exits of the OccamNets
    occam = [(k, rs) for k, rs in sorted(rows.items()) if k[0] == 'occam']
    if occam:
        lines += ['', 'Exits of the OccamResNet-18 on test (val-chosen '
                  'checkpoints, mean over seeds): share of the samples that '
                  'leave at exit k (accuracy of those samples), accuracy of '
                  'each exit on all samples, expected compute (FLOPs per '
                  'sample / the full network\'s); exit k is the exit after '
                  'stage k + 1 (the exits-234 model has none after stage '
                  '1):', '',
                  '| method | exit 1 share (acc.) | exit 2 | exit 3 | '
                  'acc. exits 0 / 1 / 2 / 3 | expected compute | test acc, '
                  'every sample at the last exit |',
                  '|---|---|---|---|---|---|---|']
        for (model, method), rs in occam:
            ex = [r['test_best'].get('exits') or {} for r in rs]
            shares, accs, compute = exit_columns(method, ex)
            last_exit = [r['test_best_last_exit']['acc'] for r in rs
                         if 'test_best_last_exit' in r]
            lines.append(f'| {METHOD_NAMES[method]} | ' + ' | '.join(shares) +
                         f' | {accs} | {compute} | '
                         f'{mean_std(last_exit)} |')
    # how far val and test rank the runs alike
    if len(results) >= 3:
        vals = [r['val'][str(r['best_epoch'])] for r in results]
        tests = [r['test_best']['acc'] for r in results]
        lines += ['', f'Val and test rank these {len(results)} runs with '
                  f'Kendall tau = {fmt(kendall_tau(vals, tests), 2)} (val '
                  'accuracy of the chosen checkpoint vs its test accuracy); '
                  'the val split is as biased as train.']
    return '\n'.join(lines)


def select_section(candidates):
    """The results.md section of a --select: another set of candidates is
    another choice, with a section of its own."""
    name = 'bar.py protocol selection'
    if tuple(candidates) == SELECT_PROTOCOLS:
        return name
    return f'{name} {" ".join(candidates)}'


def run_section(protocol, methods):
    """The results.md section of a protocol's runs. A report without the ERM
    runs (methods trained later) gets a section of its own instead of
    replacing the table that has them."""
    name = f'bar.py {protocol}'
    if 'erm' in methods:
        return name
    return f'{name} {" ".join(methods)}'


def render_select(results, command):
    lines = ['### BAR: choosing the CPU protocol on val '
             '(`benchmarks/bar.py --select`)', '',
             f'Command: `{command}`', '',
             f'Machine: {machine()}; {datetime.date.today()}. Seed 0 of each '
             'candidate; the choice is made on the val column; test is '
             'shown to measure how far val and test agree, not to choose.',
             '', '| protocol | model | val acc (best epoch) | val acc, last '
             '| train acc (chosen) | train min | test acc, val-chosen | test '
             'acc, last |',
             '|---|---|---|---|---|---|---|---|']
    for r in sorted(results, key=lambda r: (r['protocol'], r['model'])):
        last_val = r['val'].get(str(r['epochs']))
        lines.append(
            f'| `{r["protocol"]}` | {NAMES[r["model"]]} | '
            f'{fmt(r["val"][str(r["best_epoch"])])} ({r["best_epoch"]}) | '
            f'{fmt(last_val)} | {fmt(r["test_best_on_train"]["acc"])} | '
            f'{fmt(r["train_seconds"] / 60)} | '
            f'{fmt(r["test_best"]["acc"])} | {fmt(r["test_last"]["acc"])} |')
    by_protocol = {}
    for r in results:
        by_protocol.setdefault(r['protocol'], []).append(
            r['val'][str(r['best_epoch'])])
    whole = {p: statistics.mean(v) for p, v in by_protocol.items()
             if len(v) == len(NAMES)}
    if whole:
        best = max(whole, key=whole.get)
        lines += ['', 'Mean val accuracy of the two models: ' + ', '.join(
            f'`{p}` {v:.2f}' for p, v in sorted(whole.items())) +
            f'; val chooses `{best}`.']
    return '\n'.join(lines)


#: the zoo entries of the CPU protocol: (model, metafile, name)
ZOO = (('resnet', 'configs/resnet/metafile.yml',
        'resnet18-w16_1xb64_60e_bar-small'),
       ('occam', 'configs/occamnets/metafile.yml',
        'occamnets_resnet18-w16_1xb64_60e_bar-small'))
CAM_DIR = osp.join(REPO, 'docs', 'images', 'bar_cams')


def publish(args):
    """Publish seed 0's val-chosen checkpoints of the CPU protocol with
    tools/publish_model.py and record their probe scores."""
    from occam_plugin.apis.zoo_probe import record_probe
    for model, _, name in ZOO:
        res = load_result(run_dir(args.work_root, CPU_PROTOCOL, model, 'erm',
                                  0))
        if res is None:
            sys.exit(f'publish: run {model}-erm seed 0 is not finished')
        wd = run_dir(args.work_root, CPU_PROTOCOL, model, 'erm', 0)
        cfg = osp.join(REPO, res['config'])
        out = osp.join(REPO, 'checkpoints', name)
        before = set(glob.glob(out + '-*.pth'))
        rc = os.spawnv(os.P_WAIT, PYTHON, [
            PYTHON, osp.join(REPO, 'tools', 'publish_model.py'), cfg,
            osp.join(wd, res['test_best']['checkpoint']), out])
        if rc:
            sys.exit(f'publish_model.py exited {rc}')
        weights = sorted(set(glob.glob(out + '-*.pth')) - before) or \
            sorted(glob.glob(out + '-*.pth'))
        probe = record_probe(cfg, weights[-1])
        print(f'{NAMES[model]}: {weights[-1]} (test top-1 '
              f'{res["test_best"]["acc"]:.2f}, epoch {res["best_epoch"]}), '
              f'probe {probe}')


def check_zoo(args):
    """Test every BAR entry of the model zoo on the real test split and
    compare with its metafile number."""
    import yaml
    ok = True
    for _, metafile, name in ZOO:
        with open(osp.join(REPO, metafile)) as f:
            entry = next(m for m in yaml.safe_load(f)['Models']
                         if m['Name'] == name)
        want = entry['Results'][0]['Metrics']['Top 1 Accuracy']
        out_dir = osp.join(args.work_root, 'zoo_check', name)
        preds = osp.join(out_dir, f'preds_{int(time.time())}.pkl')
        opts = ([f'test_dataloader.dataset.data_root={args.data_root}']
                if args.data_root else [])
        cmd = [PYTHON, osp.join(REPO, 'tools', 'test.py'),
               osp.join(REPO, entry['Config']),
               osp.join(REPO, entry['Weights']), '--work-dir', out_dir,
               '--out', preds] + (['--cfg-options', *opts] if opts else [])
        if os.spawnv(os.P_WAIT, PYTHON, cmd):
            sys.exit(f'{name}: tools/test.py failed')
        from occam_plugin.evaluation import load_predictions
        got = summarise_predictions(load_predictions(preds), None)['acc']
        same = round(got, 2) == want
        ok &= same
        print(f'{name}: test top-1 {got:.2f}, metafile {want}: '
              f'{"ok" if same else "DIFFERENT"}')
    if not ok:
        sys.exit(1)


#: image hosts of BAR's metadata.json whose terms let anyone copy and modify
#: the image (public domain / CC0); Flickr images qualify with CC BY 2.0
OPEN_HOSTS = {'pxhere.com': 'CC0', 'publicdomainpictures.net':
              'public domain (CC0)'}


def reuse_terms(entry):
    """The terms under which a BAR image may be shown, modified, in our
    docs (with its attribution), or None: only CC BY and public-domain /
    CC0 images, never NC, ND, SA or unknown terms."""
    detail = (entry or {}).get('detail') or {}
    if entry and entry.get('source') == 'flickr' and \
            detail.get('CC') == 'CC BY 2.0':
        return (f'Flickr photo {detail["id"]} by {detail["owner"]}, '
                f'CC BY 2.0 ({detail["src"]})')
    host = (entry or {}).get('image_host')
    if host in OPEN_HOSTS:
        return f'{host}, {OPEN_HOSTS[host]} ({entry["image_source"]})'
    return None


def bar_metadata(args):
    path = osp.join(args.data_root or osp.join(REPO, 'data', 'BAR'),
                    'metadata.json')
    if not osp.isfile(path):
        sys.exit(f'{path} is missing: the CAM pictures show only images '
                 'whose terms allow it, read from BAR\'s metadata.json (in '
                 'the alinlab/BAR repository, beside train/ and test/).')
    with open(path) as f:
        return json.load(f)


def cam_images(args, meta):
    """Deterministic choice of test images for the CAM pictures: for each
    outcome (both right, only the OccamNet right, only the ResNet right,
    both wrong), the first images by id of two different classes in the
    seed-0 val-chosen predictions (classes 0-1 for the first outcome, 2-3
    for the second, ... where the outcome has images of them), among the
    test images whose terms allow showing them (:func:`reuse_terms`)."""
    from occam_plugin.datasets.bar import BAR
    from occam_plugin.evaluation import load_predictions
    preds = {}
    for model in ('resnet', 'occam'):
        wd = run_dir(args.work_root, CPU_PROTOCOL, model, 'erm', 0)
        preds[model] = load_predictions(osp.join(wd, 'test_best',
                                                 'preds.pkl'))
    picked = []
    outcomes = ((True, True), (True, False), (False, True), (False, False))
    for i, want in enumerate(outcomes):
        first = {}  # class -> its first test image (by id) of this outcome
        for o, r in zip(preds['occam'], preds['resnet']):
            assert o['img_path'] == r['img_path']
            right = (int(o['pred_label']) == int(o['gt_label']),
                     int(r['pred_label']) == int(r['gt_label']))
            gt = int(o['gt_label'])
            key = BAR.id_key(osp.basename(o['img_path']))
            stem = osp.splitext(osp.basename(o['img_path']))[0]
            if reuse_terms(meta.get(stem)) is None:
                continue
            if right == want and (gt not in first or key < first[gt][0]):
                first[gt] = (key, o['img_path'])
        # two classes per outcome, the order rotated so that the 8 images
        # cover all 6 classes
        order = [(2 * i + k) % len(CLASSES) for k in range(len(CLASSES))]
        for gt in [c for c in order if c in first][:2]:
            picked.append((want, first[gt][1]))
    return picked


def cams(args):
    """CAM grids of both seed-0 models on the chosen test images, into
    docs/images/bar_cams/ (one PNG per model and image)."""
    import shutil
    import tempfile
    os.makedirs(CAM_DIR, exist_ok=True)
    meta = bar_metadata(args)
    picked = cam_images(args, meta)
    rows = []
    for model in ('occam', 'resnet'):
        res = load_result(run_dir(args.work_root, CPU_PROTOCOL, model, 'erm',
                                  0))
        wd = run_dir(args.work_root, CPU_PROTOCOL, model, 'erm', 0)
        tmp = tempfile.mkdtemp()
        rc = os.spawnv(os.P_WAIT, PYTHON, [
            PYTHON, osp.join(REPO, 'tools', 'analysis', 'vis_cam.py'),
            osp.join(REPO, res['config']),
            osp.join(wd, res['test_best']['checkpoint']),
            '--images', *[p for _, p in picked], '--out-dir',
            osp.join(tmp, 'cams'), '--target', 'gt'])
        if rc:
            sys.exit(f'vis_cam.py exited {rc}')
        for _, path in picked:
            stem = osp.splitext(osp.basename(path))[0]
            dst = osp.join(CAM_DIR, f'{model}_{stem.replace(" ", "-")}.png')
            shutil.move(osp.join(tmp, 'cams', f'{stem}_cam.png'), dst)
        shutil.rmtree(tmp)
    for (occam_right, resnet_right), path in picked:
        name = osp.splitext(osp.basename(path))[0]
        rows.append(dict(image=name, png=name.replace(' ', '-'),
                         occam_right=occam_right, resnet_right=resnet_right,
                         terms=reuse_terms(meta[name])))
    with open(osp.join(CAM_DIR, 'images.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    print(f'{2 * len(picked)} PNGs in {CAM_DIR}')
    if args.results_md:
        write_section(args.results_md, 'bar.py cams', render_cams(rows))


def render_cams(rows):
    """The CAM pictures as a markdown section (paths relative to docs/)."""
    rel = osp.relpath(CAM_DIR, osp.join(REPO, 'docs'))
    right = {True: 'right', False: 'wrong'}
    lines = [
        '### BAR: what the models look at (`benchmarks/bar.py --cams`)', '',
        'Seed 0, the val-chosen checkpoints of the CPU protocol, BAR test '
        'images (112 px). For each outcome (both right, only the '
        'OccamResNet-18 right, only the ResNet-18 right, both wrong) the '
        'first test images by id of two classes, among the images whose '
        'terms allow showing them (CC BY or public domain, per BAR\'s '
        '`metadata.json`). Left: the image, then the CAM of the true class '
        'at every exit of the OccamResNet-18 (the exit taken framed in '
        'red, its gate above); right: the ResNet-18\'s class activation map '
        '(its linear layer at every cell of the last feature map). Red = '
        'high.', '']
    for r in rows:
        lines += [
            f'**{r["image"]}** (OccamResNet-18 {right[r["occam_right"]]}, '
            f'ResNet-18 {right[r["resnet_right"]]}); image: {r["terms"]}, '
            'CAM overlay ours.', '',
            f'![OccamResNet-18, {r["image"]}]({rel}/occam_{r["png"]}.png) '
            f'![ResNet-18, {r["image"]}]({rel}/resnet_{r["png"]}.png)', '']
    return '\n'.join(lines)


# ----------------------------------------------------------------------------
# --reference DIR: the official occam-nets-v1 models and trainers on our
# splits of BAR, with torchvision/PIL transforms, beside ours
# ----------------------------------------------------------------------------
#: files of https://github.com/erobic/occam-nets-v1 the BAR glue imports
REFERENCE_FILES = ('models/occam_resnet.py', 'models/variable_width_resnet.py',
                   'trainers/occam_trainer.py', 'trainers/base_trainer.py',
                   'conf/trainer/occam_trainer.yaml')
REFERENCE_MODELS = dict(resnet='ref_resnet', occam='ref_occam')


def reference_dir(work_root, model, seed):
    return osp.join(work_root, 'reference', f'{model}_seed{seed}')


def _reference_config(ref, model, epochs, batch_size, milestones):
    """The reference's defaults with the CPU protocol's optimiser, schedule
    and batch (the reference has no BAR config of its own)."""
    cfg = reference_config(ref, model, len(CLASSES))
    cfg.dataset.name = 'BAR'
    cfg.dataset.batch_size = batch_size
    cfg.dataset.num_workers = 0
    cfg.optimizer.name = 'Adam'
    cfg.optimizer.args = dict(lr=1e-3, weight_decay=5e-4)
    cfg.optimizer.epochs = epochs
    cfg.optimizer.lr_scheduler = dict(type='MultiStepLR', args=dict(
        milestones=list(milestones), gamma=0.1))
    return cfg


def reference_one(args):
    """One reference training in this process: its model class and its
    LightningModule trainer (losses, per-epoch state, optimiser and lr
    schedule from its config) driven by pytorch-lightning, on our splits
    (the same files as ours: ``train/`` less our val images), with
    torchvision's PIL transforms (RandomResizedCrop + flip; Resize +
    CenterCrop; ImageNet normalisation). Validated on our val split after
    every epoch; the last and the val-chosen weights are scored on test."""
    import copy
    import logging
    import random

    import numpy as np
    import torch
    from mmengine.config import Config
    from PIL import Image
    from torchvision import transforms as T

    model, seed = args.reference_one[0], int(args.reference_one[1])
    ref = check_reference(args.reference, REFERENCE_FILES)
    import occam_plugin  # noqa: F401  (ours first, see import_reference)
    from occam_plugin.datasets.bar import BAR
    import_reference(ref)
    import pytorch_lightning as pl
    from models.occam_resnet import occam_resnet18
    from models.variable_width_resnet import resnet18vw
    from trainers.base_trainer import BaseTrainer
    from trainers.occam_trainer import OccamTrainer
    logging.getLogger().setLevel(logging.WARNING)
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))

    cfg = Config.fromfile(osp.join(
        REPO, PROTOCOLS[CPU_PROTOCOL][0][('resnet', 'erm')]))
    width = cfg.model.backbone.base_channels
    epochs = args.epochs or cfg.train_cfg.max_epochs
    milestones = cfg.param_scheduler.milestones if not args.epochs else [
        max(1, epochs * 5 // 9), max(1, epochs * 7 // 9)]
    size = cfg.train_pipeline[1].scale
    batch_size = cfg.train_dataloader.batch_size
    data_root = args.data_root or cfg.train_dataloader.dataset.data_root
    norm = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    train_tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(),
                          T.ToTensor(), norm])
    test_tf = T.Compose([T.Resize(size * 8 // 7), T.CenterCrop(size),
                         T.ToTensor(), norm])

    class Split(torch.utils.data.Dataset):
        """Our BAR split's files and labels, read and transformed as the
        reference's BARDataset does (PIL, ``convert('RGB')``)."""

        def __init__(self, split, transform):
            ds = BAR(data_root=data_root, split=split, pipeline=[])
            self.items = [(ds.get_data_info(i)['img_path'],
                           int(ds.get_data_info(i)['gt_label']))
                          for i in range(len(ds))]
            self.transform = transform

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            path, label = self.items[i]
            with open(path, 'rb') as f:
                img = Image.open(f).convert('RGB')
            return dict(x=self.transform(img), y=torch.LongTensor([label]),
                        item_ix=i)

    def build_model(self):  # width 16 instead of the factory's default
        if model == 'ref_occam':
            self.model = occam_resnet18(len(CLASSES), width=width,
                                        exits_kwargs={})
        else:
            self.model = resnet18vw(3, width, num_classes=len(CLASSES))

    base = OccamTrainer if model == 'ref_occam' else BaseTrainer
    trainer_cls = type('Ref' + base.__name__, (base, ),
                       dict(build_model=build_model))
    rcfg = _reference_config(ref, model, epochs, batch_size, milestones)
    rcfg.seed = seed
    random.seed(seed)  # main.py's init_seeds
    torch.manual_seed(seed)
    np.random.seed(seed)
    loader = dict(batch_size=batch_size, num_workers=0)
    train = torch.utils.data.DataLoader(Split('train', train_tf),
                                        shuffle=True, **loader)
    evals = {s: torch.utils.data.DataLoader(Split(s, test_tf), **loader)
             for s in ('val', 'test')}
    module = trainer_cls(rcfg)
    module.set_iters_per_epoch(len(train))
    module.set_train_loader(train)

    def accuracy(net, split):
        net.eval()
        correct = n = 0
        with torch.no_grad():
            for batch in evals[split]:
                out = net(batch['x'])
                logits = out['E=early, logits'] if model == 'ref_occam' \
                    else out
                correct += int((logits.argmax(-1) ==
                                batch['y'].squeeze(-1)).sum())
                n += len(batch['y'])
        net.train()
        return 100.0 * correct / n

    state = dict(val={}, best=None, best_acc=-1.0)

    class ValEveryEpoch(pl.Callback):
        """Our protocol's model selection: val after every epoch, the
        first best kept (as our checkpoint hook keeps it)."""

        def on_train_epoch_end(self, trainer, pl_module):
            epoch = trainer.current_epoch + 1
            acc = accuracy(pl_module.model, 'val')
            state['val'][epoch] = acc
            if acc > state['best_acc']:
                state.update(best_acc=acc, best_epoch=epoch,
                             best=copy.deepcopy(pl_module.model.state_dict()))

    out_dir = reference_dir(args.work_root, model, seed)
    os.makedirs(out_dir, exist_ok=True)
    trainer = pl.Trainer(
        accelerator='cpu', devices=1, min_epochs=epochs, max_epochs=epochs,
        num_sanity_val_steps=0, limit_val_batches=0,
        precision=rcfg.trainer.precision,
        gradient_clip_val=rcfg.trainer.gradient_clip_val,
        callbacks=[ValEveryEpoch()], logger=False,
        enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=out_dir)
    t0 = time.time()
    trainer.fit(module, train_dataloaders=train)
    seconds = time.time() - t0
    net = module.model
    result = dict(model=model, seed=seed, epochs=epochs, width=width,
                  milestones=list(milestones), train_seconds=seconds,
                  val=state['val'], best_epoch=state['best_epoch'],
                  test_last=dict(acc=accuracy(net, 'test')))
    net.load_state_dict(state['best'])
    result['test_best'] = dict(acc=accuracy(net, 'test'))
    result['finished'] = time.time()
    with open(osp.join(out_dir, 'result.json'), 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=1)
    print(f'{model} seed {seed}: test {result["test_last"]["acc"]:.2f} (last)'
          f', {result["test_best"]["acc"]:.2f} (val-chosen, epoch '
          f'{result["best_epoch"]}); {seconds:.0f} s', flush=True)


def render_parity(ours, refs, command):
    """Reference vs ours per model: test acc of the last and of the
    val-chosen weights, mean ± sd over the seeds and per seed."""
    lines = [
        '## BAR parity with the official code, CPU protocol (`benchmarks/'
        'bar.py --reference`)', '',
        f'Command: `{command}`', '',
        f'Machine: {machine()}; {datetime.date.today()}. The reference: '
        'erobic/occam-nets-v1 (its VariableWidthResNet-18 / OccamResNet-18, '
        'its trainers and losses under pytorch-lightning 1.9) on our BAR '
        'splits, torchvision PIL transforms; ours: `tools/train.py` on the '
        'shipped configs. Same protocol `w16-112px-60e` on both sides.', '',
        '| model | code | seeds | test, last | per seed | test, val-chosen '
        '| per seed |', '|---|---|---|---|---|---|---|']
    for model in ('resnet', 'occam'):
        for code, rs in (('reference', refs.get(model, [])),
                         ('ours', ours.get(model, []))):
            if not rs:
                continue
            rs = sorted(rs, key=lambda r: r['seed'])
            last = [r['test_last']['acc'] for r in rs]
            best = [r['test_best']['acc'] for r in rs]
            lines.append(
                f'| {NAMES[model]} | {code} | '
                f'{",".join(str(r["seed"]) for r in rs)} | {mean_std(last)} '
                f'| {" / ".join(f"{v:.2f}" for v in last)} | '
                f'{mean_std(best)} | {" / ".join(f"{v:.2f}" for v in best)} |')
    return '\n'.join(lines)


def reference_parity(args):
    """Train the missing reference runs (``--jobs`` at a time), then the
    parity table beside our runs of the same seeds in ``--work-root``."""
    check_reference(args.reference, REFERENCE_FILES)  # before any process
    todo = []
    for m in args.models:
        for s in args.seeds:
            if not osp.isfile(osp.join(reference_dir(
                    args.work_root, REFERENCE_MODELS[m], s), 'result.json')):
                todo.append([PYTHON, osp.abspath(__file__), '--reference',
                             args.reference, '--reference-one',
                             REFERENCE_MODELS[m], str(s),
                             '--work-root', args.work_root,
                             *(['--data-root', args.data_root]
                               if args.data_root else []),
                             *(['--epochs', str(args.epochs)]
                               if args.epochs else [])])
    if not args.report_only:
        for i, rc, sec, tail in run_commands(todo, jobs=args.jobs):
            print(f'{todo[i][-3:]}: exit {rc} after {sec / 60:.1f} min'
                  + (f'\n{tail}' if rc else ''), flush=True)
    refs, ours = {}, {}
    for m in args.models:
        for s in args.seeds:
            path = osp.join(reference_dir(args.work_root, REFERENCE_MODELS[m],
                                          s), 'result.json')
            if osp.isfile(path):
                with open(path, encoding='utf-8') as f:
                    refs.setdefault(m, []).append(json.load(f))
            r = load_result(run_dir(args.work_root, args.protocol, m, 'erm',
                                    s))
            if complete(r):
                ours.setdefault(m, []).append(r)
    command = 'python benchmarks/bar.py ' + ' '.join(sys.argv[1:])
    text = render_parity(ours, refs, command)
    print(text)
    if args.results_md:
        write_section(args.results_md, 'bar.py reference parity', text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--protocol', default=CPU_PROTOCOL, choices=PROTOCOLS)
    p.add_argument('--paper-scale', action='store_true',
                   help='the shipped 224 px, width-58, 90-epoch configs '
                   '(ERM pair; a GPU is expected)')
    p.add_argument('--select', action='store_true',
                   help='seed 0 of each candidate CPU protocol')
    p.add_argument('--protocols', nargs='+', default=None,
                   choices=[k for k in PROTOCOLS if k != 'paper'],
                   help='the candidates of --select (default: '
                   + ' '.join(SELECT_PROTOCOLS) + ')')
    p.add_argument('--models', nargs='+', default=['resnet', 'occam'],
                   choices=list(NAMES))
    p.add_argument('--methods', nargs='+', default=['erm'],
                   choices=list(METHOD_NAMES))
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--jobs', type=int, default=2)
    p.add_argument('--data-root', default=None,
                   help='BAR folder (default: the configs\' data/BAR)')
    p.add_argument('--work-root', default=osp.join(REPO, 'work_dirs', 'bar'))
    p.add_argument('--amp', action='store_true',
                   help='train with bf16 automatic mixed precision (CUDA; '
                   'tools/train.py --amp, optim_wrapper.dtype=bfloat16)')
    p.add_argument('--epochs', type=int, default=None,
                   help='epochs instead of the protocol\'s (the lr steps '
                   'move with them)')
    p.add_argument('--extra-options', nargs='*', default=[],
                   help='more --cfg-options for every run (e.g. to shrink '
                   'the runs in a test)')
    p.add_argument('--results-md', default=None)
    p.add_argument('--report-only', action='store_true')
    p.add_argument('--publish', action='store_true',
                   help='publish seed 0\'s val-chosen CPU-protocol '
                   'checkpoints (tools/publish_model.py) and record their '
                   'probe scores for the zoo test')
    p.add_argument('--check-zoo', action='store_true',
                   help='test the published BAR models on the real test '
                   'split against their metafile numbers')
    p.add_argument('--cams', action='store_true',
                   help='CAM pictures of seed 0\'s models on test images, '
                   'into docs/images/bar_cams/')
    p.add_argument('--reference', default=None, metavar='DIR',
                   help='a clone of erobic/occam-nets-v1: train its models '
                   'on our splits and print the parity table beside ours '
                   '(its packages on PYTHONPATH, see benchmarks/common.py)')
    p.add_argument('--one', nargs=4, help=argparse.SUPPRESS)
    p.add_argument('--reference-one', nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        return one(args)
    if args.reference_one:
        return reference_one(args)
    if args.reference:
        return reference_parity(args)
    for flag, action in (('publish', publish), ('check_zoo', check_zoo),
                         ('cams', cams)):
        if getattr(args, flag):
            return action(args)
    if args.paper_scale:
        import torch
        args.protocol = 'paper'
        if not torch.cuda.is_available():
            sys.exit('bar.py --paper-scale: no GPU is visible; the 224 px, '
                     '90-epoch pair takes days on a CPU. No paper-scale '
                     'numbers are reported without one.')
    command = 'python benchmarks/bar.py ' + ' '.join(argv or sys.argv[1:])
    candidates = tuple(args.protocols or SELECT_PROTOCOLS)
    protocols = candidates if args.select else (args.protocol, )
    methods = ['erm'] if args.select else args.methods
    seeds = [0] if args.select else args.seeds
    runs = [(pr, m, me, s) for s in seeds for pr in protocols
            for me in methods for m in args.models
            if (m, me) in PROTOCOLS[pr][0]]
    failed = []
    if not args.report_only:
        todo = [r for r in runs if not complete(
            load_result(run_dir(args.work_root, *r)))]
        cmds = [[PYTHON, osp.abspath(__file__), '--one', pr, m, me, str(s),
                 '--work-root', args.work_root, '--jobs', str(args.jobs),
                 *(['--data-root', args.data_root] if args.data_root else []),
                 *(['--epochs', str(args.epochs)] if args.epochs else []),
                 *(['--extra-options', *args.extra_options]
                   if args.extra_options else []),
                 *(['--amp'] if args.amp else [])]
                for pr, m, me, s in todo]
        t0 = time.time()
        for i, rc, sec, tail in run_commands(cmds, jobs=args.jobs):
            print(f'{todo[i]}: exit {rc} after {sec / 60:.1f} min'
                  + (f'\n{tail}' if rc else ''), flush=True)
            if rc:
                failed.append(todo[i])
        print(f'all runs: {(time.time() - t0) / 60:.1f} min')
    results = [r for r in (load_result(run_dir(args.work_root, *run))
                           for run in runs) if r]
    if args.select:
        text = render_select(results, command)
        section = select_section(candidates)
    else:
        text = render(results, args, command, args.protocol)
        section = run_section(args.protocol, methods)
    print(text)
    if args.results_md:
        write_section(args.results_md, section, text)
    if failed:
        # the table holds the finished runs; the exit status says the rest
        sys.exit(f'bar.py: {len(failed)} of {len(runs)} runs failed: '
                 + ', '.join(map(str, failed)))


if __name__ == '__main__':
    main()
