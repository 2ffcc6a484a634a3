"""One picture per image: the image, then every exit's CAM over it.

Shared by ``tools/analysis/vis_cam.py`` and ``CAMVisualizationHook`` so both
draw the same grid. A plain classifier (backbone, global average pooling,
one linear layer: the ResNet baselines) has one class activation map, that
linear layer applied at every cell of the last feature map (Zhou et al.,
CVPR 2016; its spatial mean is the model's logit): its grid has one panel
after the image (:func:`collect_class_cams`). The CAMs come from a
compute-all pass (every exit's CAM is wanted, also those a dynamic pass would
skip); the exit the sample took comes
from the head's own exit rule (``head.predict``), so the picture agrees with
the model's predictions.

Layout (pixels, fixed so callers know the size): one row of ``1 + E`` panels
of ``panel_size`` x ``panel_size`` under a title band of ``title_px``:
``width = (1 + E) * panel_size``, ``height = panel_size + title_px``.
"""
import contextlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    'grid_size', 'raw_images_rgb', 'collect_exit_cams', 'collect_class_cams',
    'draw_cam_grid'
]

TITLE_PX = 48


def grid_size(num_exits: int, panel_size: int = 160,
              title_px: int = TITLE_PX) -> Tuple[int, int]:
    """``(height, width)`` in pixels of a :func:`draw_cam_grid` grid."""
    return panel_size + title_px, (1 + num_exits) * panel_size


def raw_images_rgb(inputs: Sequence[torch.Tensor],
                   data_preprocessor) -> List[np.ndarray]:
    """Un-normalised input images as HxWx3 uint8 RGB.

    ``inputs`` are what ``PackInputs`` packed (CHW, the pipeline's channel
    order, BGR when loaded with mmcv); the preprocessor's ``to_rgb``
    (``ClsDataPreprocessor``, which every classifier of this package uses)
    tells whether that order is BGR; a preprocessor without it is taken as
    RGB.
    """
    bgr = bool(getattr(data_preprocessor, 'to_rgb', False))
    images = []
    for img in inputs:
        arr = img.detach().cpu()
        if arr.dim() != 3:
            raise ValueError(f'raw_images_rgb: expected a CHW image, got '
                             f'shape {tuple(arr.shape)}')
        arr = arr.permute(1, 2, 0).numpy()
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        elif bgr:
            arr = arr[..., ::-1]
        images.append(np.ascontiguousarray(arr))
    return images


@contextlib.contextmanager
def _eval_batch(model, data_batch: dict, target: str, caller: str):
    """The batch through the model's data preprocessor, the model in eval
    mode meanwhile (its mode restored after)."""
    if target not in ('gt', 'pred'):
        raise ValueError(f"{caller}: target={target!r}; expected 'gt' or "
                         "'pred'")
    was_training = model.training
    model.eval()
    try:
        data = model.data_preprocessor(data_batch, False)
        yield data['inputs'], data['data_samples']
    finally:
        model.train(was_training)


def _labels(sample, i: int, target: str, caller: str):
    """``(gt or None, pred, class whose CAM is drawn)`` of a predicted
    sample."""
    gt = sample.get('gt_label')
    gt = int(gt.item()) if gt is not None and gt.numel() else None
    pred = int(sample.pred_label.item())
    if target == 'gt' and gt is None:
        raise ValueError(f'{caller}: target="gt" but sample {i} has no '
                         'gt_label; use target="pred"')
    return gt, pred, gt if target == 'gt' else pred


@torch.no_grad()
def collect_exit_cams(model, data_batch: dict,
                      target: str = 'gt') -> List[Dict]:
    """Per sample: every exit's CAM of the target class and the exit taken.

    Args:
        model: An ``OccamClassifier`` (neck with exits, head with
            ``forward_exits`` and ``predict``).
        data_batch (dict): ``inputs`` / ``data_samples`` as a dataloader
            gives them (raw, before the data preprocessor).
        target (str): ``'gt'`` for the ground-truth class CAM, ``'pred'`` for
            the class the model predicted.

    Returns:
        list[dict]: per sample ``image`` (HxWx3 uint8 RGB), ``cams``
        (E x h x w float arrays), ``gates`` (E), ``exit_idx``, ``pred_label``,
        ``gt_label`` (or None), ``target_label``.
    """
    with _eval_batch(model, data_batch, target,
                     'collect_exit_cams') as (inputs, samples):
        feats = model.neck(model.backbone(inputs))
        out = model.head.forward_exits(feats)
        samples = model.head.predict(feats, samples)
    images = raw_images_rgb(data_batch['inputs'], model.data_preprocessor)
    records = []
    for i, sample in enumerate(samples):
        gt, pred, cls = _labels(sample, i, target, 'collect_exit_cams')
        records.append(
            dict(
                image=images[i],
                cams=[c[i, cls].float().cpu().numpy() for c in out['cams']],
                gates=[float(g[i]) for g in out['gates']],
                exit_idx=int(sample.exit_idx),
                pred_label=pred,
                gt_label=gt,
                target_label=cls,
                img_path=sample.get('img_path'),
            ))
    return records


@torch.no_grad()
def collect_class_cams(model, data_batch: dict,
                       target: str = 'gt') -> List[Dict]:
    """Per sample: the class activation map of a plain classifier.

    Args:
        model: An mmpretrain ``ImageClassifier`` whose neck is a global
            average pooling and whose head has one linear layer ``fc`` (our
            ``PlainClassifier`` baselines, mmpretrain's
            ``LinearClsHead``).
        data_batch (dict): ``inputs`` / ``data_samples`` as a dataloader
            gives them (raw, before the data preprocessor).
        target (str): ``'gt'`` or ``'pred'``, as :func:`collect_exit_cams`.

    Returns:
        list[dict]: records of :func:`collect_exit_cams`' form with one map
        (``cams`` of length 1, ``gates`` ``[None]``, ``exit_idx`` 0) and
        ``panel_titles`` ``['class activation']``.
    """
    fc = getattr(getattr(model, 'head', None), 'fc', None)
    if not isinstance(fc, torch.nn.Linear):
        raise ValueError(
            f'collect_class_cams: {type(model).__name__}.head has no linear '
            'layer `fc`; a class activation map needs a backbone, a global '
            'average pooling and one linear layer.')
    with _eval_batch(model, data_batch, target,
                     'collect_class_cams') as (inputs, samples):
        feats = model.backbone(inputs)
        fmap = feats[-1] if isinstance(feats, (tuple, list)) else feats
        if fmap.dim() != 4:
            raise ValueError(
                'collect_class_cams: the backbone\'s last output has shape '
                f'{tuple(fmap.shape)}; a class activation map needs a 4-D '
                'feature map.')
        # fc at every cell: (N, K, h, w); its spatial mean is the logit
        cams = torch.einsum('nchw,kc->nkhw', fmap.float(),
                            fc.weight.float()) + fc.bias.float()[:, None, None]
        samples = model.predict(inputs, samples)
    images = raw_images_rgb(data_batch['inputs'], model.data_preprocessor)
    records = []
    for i, sample in enumerate(samples):
        gt, pred, cls = _labels(sample, i, target, 'collect_class_cams')
        records.append(dict(
            image=images[i], cams=[cams[i, cls].cpu().numpy()],
            gates=[None], exit_idx=0, pred_label=pred, gt_label=gt,
            target_label=cls, img_path=sample.get('img_path'),
            panel_titles=['class activation']))
    return records


def _overlay(image: np.ndarray, cam: np.ndarray, size: int,
             cmap) -> np.ndarray:
    """Image resized to ``size`` with the min-max normalised CAM over it."""
    img = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    img = F.interpolate(img, size=(size, size), mode='bilinear',
                        align_corners=False)[0].permute(1, 2, 0).numpy()
    c = torch.from_numpy(np.asarray(cam, dtype=np.float32))[None, None]
    c = F.interpolate(c, size=(size, size), mode='bilinear',
                      align_corners=False)[0, 0].numpy()
    span = float(c.max() - c.min())
    if span > 1e-6 * (float(np.abs(c).max()) + 1e-12):
        c = (c - c.min()) / span
    else:  # a flat CAM (e.g. a 1x1 map) has no "where": draw it neutral
        c = np.full_like(c, 0.5)
    c = np.clip(c, 0.0, 1.0)
    heat = cmap(c)[..., :3] * 255.0
    return np.clip(0.5 * img + 0.5 * heat, 0, 255).astype(np.uint8)


def draw_cam_grid(record: Dict,
                  class_names: Optional[Sequence[str]] = None,
                  panel_size: int = 160,
                  title_px: int = TITLE_PX,
                  target: str = 'gt') -> np.ndarray:
    """Draw one sample's grid; returns an RGB uint8 array of
    :func:`grid_size`.

    Titles: the image panel names the GT and predicted class (the CAMs are
    of the ``target`` class); exit ``k``'s panel its gate value; the exit the
    sample took is framed in red and titled ``TAKEN``. A flat CAM (no
    spatial variation, e.g. a 1x1 map) is drawn as a neutral mid colour.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    def name(c):
        if c is None:
            return '?'
        if class_names is not None and 0 <= c < len(class_names):
            return str(class_names[c])[:14]
        return str(c)

    def fit(text):  # font size (pt) so the text fits its title cell
        lines = text.split('\n')
        chars = max(len(line) for line in lines)
        px_per_pt = dpi / 72
        by_width = 0.95 * panel_size / (0.6 * px_per_pt * max(chars, 1))
        by_height = 0.95 * title_px / (1.25 * px_per_pt * len(lines))
        return max(4.0, min(10.0, by_width, by_height))

    num_exits = len(record['cams'])
    height, width = grid_size(num_exits, panel_size, title_px)
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    fig.patch.set_facecolor('white')
    cmap = colormaps['jet']
    panels = [np.asarray(
        torch.nn.functional.interpolate(
            torch.from_numpy(record['image']).permute(2, 0, 1)[None].float(),
            size=(panel_size, panel_size), mode='bilinear',
            align_corners=False)[0].permute(1, 2, 0).clamp(0, 255).byte())]
    titles = [f"GT {name(record['gt_label'])}\n"
              f"pred {name(record['pred_label'])}\nCAM: {target} class"]
    plain = record.get('panel_titles')
    for k, cam in enumerate(record['cams']):
        panels.append(_overlay(record['image'], cam, panel_size, cmap))
        if plain:  # one map, no exits to take
            titles.append(plain[k])
            continue
        taken = ' TAKEN' if k == record['exit_idx'] else ''
        titles.append(f'exit {k}{taken}\ngate {record["gates"][k]:.2f}')
    for j, (panel, title) in enumerate(zip(panels, titles)):
        ax = fig.add_axes([j * panel_size / width, 0, panel_size / width,
                           panel_size / height])
        ax.imshow(panel, interpolation='nearest')
        ax.set_xticks([])
        ax.set_yticks([])
        taken = j - 1 == record['exit_idx'] and not plain
        color = 'red' if taken else 'black'
        fig.text((j + 0.5) * panel_size / width,
                 1 - 0.5 * title_px / height, title, ha='center',
                 va='center', fontsize=fit(title), color=color)
        if taken:
            ax.add_patch(
                Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False,
                          edgecolor='red', linewidth=3))
    canvas.draw()
    grid = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    if grid.shape[:2] != (height, width):  # guard against dpi rounding
        raise RuntimeError(f'draw_cam_grid: drew {grid.shape[:2]}, expected '
                           f'{(height, width)}')
    return grid
