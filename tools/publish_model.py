"""Publish a trained checkpoint: inference weights only, named by their hash.

    python tools/publish_model.py CONFIG CHECKPOINT OUT_NAME
    # -> OUT_NAME-<sha256[:8]>.pth, e.g. occam_resnet18_bar-1a2b3c4d.pth

As mmpretrain's publish_model: drops the optimizer, the lr schedulers and the
message hub, and appends the first 8 hex digits of the file's sha256. Unlike
it, it builds the config's model, loads the checkpoint into it strictly (a
checkpoint of another model is refused, naming the file) and empties the
training-only per-sample state that modules declare (``TrainingState.
PER_SAMPLE_BUFFERS``: the Occam gate memory, LfF's loss EMAs, which grow
with the training set), so the published file loads strictly into the same
config (tools/test.py, mmpretrain's get_model) and predicts the same.
"""
import argparse
import hashlib
import os
import os.path as osp

import torch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the config the checkpoint was '
                        'trained with')
    parser.add_argument('checkpoint', help='a checkpoint of tools/train.py')
    parser.add_argument('out_name', help='output path without the hash and '
                        'extension (e.g. work_dirs/zoo/occam_resnet18_bar)')
    return parser.parse_args(argv)


def check_out_name(out_name: str) -> None:
    """``out_name`` must name a file to be (``<out_name>-<hash>.pth``), not
    a folder (torch would end in "invalid file name")."""
    if osp.isdir(out_name) or not osp.basename(out_name):
        example = osp.join(out_name or '.', 'my_model')
        raise SystemExit(
            f'error: out_name {out_name!r} is a folder; give the published '
            'file\'s name without the hash and the extension, e.g. '
            f'{example!r} (-> {example}-<sha256[:8]>.pth).')


def publish(config: str, checkpoint: str, out_name: str) -> str:
    """Write the published checkpoint; returns its path."""
    check_out_name(out_name)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from occam_plugin.engine.runner import (load_state_strictly,
                                            read_checkpoint)
    from occam_plugin.models.utils.training_state import \
        drop_per_sample_state
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:  # as the Runner does
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    ckpt = read_checkpoint(checkpoint)
    load_state_strictly(model, ckpt, checkpoint)
    dropped = drop_per_sample_state(model)
    meta = {k: v for k, v in (ckpt.get('meta') or {}).items()
            if k in ('epoch', 'iter', 'mmengine_version', 'dataset_meta',
                     'seed')}
    meta['published_from'] = osp.basename(checkpoint)
    meta['emptied_training_state'] = dropped
    from occam_plugin.fileio import atomic_path
    os.makedirs(osp.dirname(osp.abspath(out_name)), exist_ok=True)
    published = []

    def named_by_hash(tmp: str) -> str:
        with open(tmp, 'rb') as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        published.append(f'{out_name}-{sha[:8]}.pth')
        return published[-1]

    # whole or not at all: a full disk is one error naming the file, and
    # leaves no temporary behind
    with atomic_path(named_by_hash, f'{out_name}.partial-{os.getpid()}',
                     fsync=True, name=f'{out_name}-<sha256[:8]>.pth') as tmp:
        torch.save(dict(meta=meta, state_dict=model.state_dict()), tmp)
    final = published[-1]
    return final


def main(argv=None):
    args = parse_args(argv)
    check_out_name(args.out_name)  # before the model is built
    from occam_plugin.engine.runner import CheckpointError
    try:
        final = publish(args.config, args.checkpoint, args.out_name)
    except (CheckpointError, OSError) as err:  # a full disk: OSError
        raise SystemExit(f'error: {err}') from err
    print(f'published {final} ({osp.getsize(final) / 2**20:.1f} MB, from '
          f'{osp.getsize(args.checkpoint) / 2**20:.1f} MB)')
    return final


if __name__ == '__main__':
    from occam_plugin.cli import run_tool
    run_tool(main)
