"""Draw what every exit of an OccamNet (or a plain classifier) looked at,
one PNG per image.

    python tools/analysis/vis_cam.py CONFIG CKPT --images a.jpg b.jpg \\
        --out-dir work_dirs/cams [--target gt|pred] [--gt-labels diving 3] \\
        [--panel-size 160] [--cfg-options key=value ...]

Each PNG (``<out-dir>/<image name>_cam.png``; images of the same name get
``<image name>_2_cam.png``, ...; a PNG already in ``<out-dir>`` is not
replaced without ``--overwrite``) is one row: the image, then the
CAM of the target class (``--target gt``: ground truth, ``pred``: predicted
class) of every exit over it, titled with the exit's gate; the exit the
sample took is framed in red. For a plain classifier (a ResNet baseline:
backbone, global average pooling, one linear layer) the row is the image and
its class activation map (that linear layer at every cell of the last
feature map). Images go through the config's test pipeline.

Ground truth for ``--target gt``: ``--gt-labels`` (class names or indices,
one per image) or, when not given, the file-name prefix before the first
``_`` when it is a class name (BAR's naming, e.g. ``diving_12.jpg``).
"""
import argparse
import os
import os.path as osp
import sys

import torch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='CAM grids of every exit of an OccamNet, or the class '
        'activation map of a plain classifier')
    parser.add_argument('config', help='config file path, or the name of a '
                        'shipped config (as tools/train.py takes it)')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--images', nargs='+', required=True,
                        help='image files')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--target', choices=['gt', 'pred'], default='gt',
                        help='class whose CAM is drawn (default: gt)')
    parser.add_argument('--gt-labels', nargs='+',
                        help='ground-truth class (name or index) per image')
    parser.add_argument('--panel-size', type=int, default=160,
                        help='pixels of one panel (default: 160)')
    parser.add_argument('--device', default='cpu', help='torch device')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace PNGs of the same names already in '
                        '--out-dir (default: refused, before any work)')
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, key=value')
    return parser.parse_args(argv)


def class_names(cfg):
    """Class names of the config's test dataset (None when unknown)."""
    from occam_plugin.visualization import dataset_class_names
    return dataset_class_names(cfg.test_dataloader.dataset)


def resolve_labels(images, gt_labels, classes, need):
    """One int label (or None) per image; see the module docstring."""
    if gt_labels is not None:
        if len(gt_labels) != len(images):
            raise SystemExit(f'--gt-labels has {len(gt_labels)} values for '
                             f'{len(images)} images.')
        labels = []
        for value in gt_labels:
            if value.lstrip('-').isdigit():
                labels.append(int(value))
            elif classes is not None and value in classes:
                labels.append(classes.index(value))
            else:
                raise SystemExit(f'--gt-labels: {value!r} is neither an index '
                                 f'nor a class name of {classes}.')
        return labels
    labels = []
    for path in images:
        prefix = osp.basename(path).split('_')[0]
        known = classes is not None and prefix in classes
        label = classes.index(prefix) if known else None
        if label is None and need:
            known_as = (f'is not a class of {classes}' if classes is not None
                        else "cannot be checked: the config's test dataset "
                        'names no classes')
            raise SystemExit(
                f'--target gt: no ground truth for {path!r} (file-name prefix '
                f'{prefix!r} {known_as}); give --gt-labels or use --target '
                'pred.')
        labels.append(label)
    return labels


def output_names(images, out_dir, overwrite=False):
    """``<out_dir>/<image name>_cam.png`` per image, claimed for this run
    (:class:`~occam_plugin.fileio.OutputClaims`): a file already there is
    refused unless ``overwrite``; images of the same name (``a/x.jpg``,
    ``b/x.jpg``) get ``x_cam.png``, ``x_2_cam.png``, ..."""
    from occam_plugin.fileio import OutputClaims
    claims = OutputClaims(overwrite)
    outs = []
    for path in images:
        stem = osp.splitext(osp.basename(path))[0]
        out, n = osp.join(out_dir, f'{stem}_cam.png'), 1
        while claims.taken(out):  # another input of this run has that name
            n += 1
            out = osp.join(out_dir, f'{stem}_{n}_cam.png')
        try:
            outs.append(claims.claim(out, f'the CAM grid of {path!r}'))
        except OSError as err:
            raise SystemExit(f'error: {err}') from err
    return outs


def load_model(cfg, checkpoint, device):
    from occam_plugin.apis import init_occam_model
    from occam_plugin.engine.runner import CheckpointError
    # strict, and errors that name the file (as tools/test.py)
    try:
        model = init_occam_model(cfg, checkpoint, device)
    except CheckpointError as err:
        raise SystemExit(f'error: {err}') from err
    head = getattr(model, 'head', None)
    if hasattr(head, 'forward_exits') and getattr(model, 'neck', None):
        return model  # an OccamNet: every exit's CAM
    if isinstance(getattr(head, 'fc', None), torch.nn.Linear):
        return model  # a plain classifier: its class activation map
    raise SystemExit(
        f'vis_cam: the model ({type(model).__name__}) is neither an '
        'OccamClassifier (neck with exits, OccamHead) nor a plain classifier '
        'whose head has one linear layer `fc`; it has no CAM to draw.')


def main(argv=None):
    args = parse_args(argv)
    from occam_plugin import resolve_config
    try:  # a file, or a shipped config's name / configs/... path
        args.config = resolve_config(args.config)
    except FileNotFoundError as err:
        raise SystemExit(f'config: {err}') from err
    for path, what in [(args.checkpoint, 'checkpoint')] + [
                           (p, 'image') for p in args.images]:
        if not osp.isfile(path):
            raise SystemExit(f'{what} file {path!r} does not exist.')
    from mmengine.config import Config
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import init_default_scope
    import mmcv

    import occam_plugin  # noqa: F401  (registers)
    from occam_plugin.fileio import atomic_path, suffixed_temp
    from occam_plugin.visualization import (collect_class_cams,
                                            collect_exit_cams, draw_cam_grid)

    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    classes = class_names(cfg)
    labels = resolve_labels(args.images, args.gt_labels, classes,
                            need=args.target == 'gt')
    outs = output_names(args.images, args.out_dir, args.overwrite)
    model = load_model(cfg, args.checkpoint, args.device)
    collect = (collect_exit_cams if hasattr(model.head, 'forward_exits')
               else collect_class_cams)
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)

    items = []
    for path, label in zip(args.images, labels):
        data = pipeline(dict(img_path=path))
        if label is not None:
            data['data_samples'].set_gt_label(label)
        items.append(data)
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    for path, data, out in zip(args.images, items, outs):  # any image size
        rec = collect(model, pseudo_collate([data]), target=args.target)[0]
        grid = draw_cam_grid(rec, class_names=classes,
                             panel_size=args.panel_size, target=args.target)
        with atomic_path(out, suffixed_temp(out)) as tmp:
            mmcv.imwrite(grid[..., ::-1], tmp)  # RGB -> BGR for cv2
        written.append(out)
        name = (lambda c: classes[c] if classes and c is not None
                and 0 <= c < len(classes) else c)
        taken = '' if rec.get('panel_titles') else \
            f'exit {rec["exit_idx"]}, '
        print(f'{path}: {taken}pred {name(rec["pred_label"])}'
              f', gt {name(rec["gt_label"])} -> {out}')
    return written


if __name__ == '__main__':
    from occam_plugin.cli import run_tool
    sys.exit(0 if run_tool(main) else 1)
