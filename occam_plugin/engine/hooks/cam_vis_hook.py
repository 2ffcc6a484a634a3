from typing import Sequence

from mmengine.dataset import pseudo_collate
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

__all__ = ['CAMVisualizationHook']


@HOOKS.register_module()
class CAMVisualizationHook(Hook):
    """Log CAM grids of a few fixed validation images every few epochs.

    At the end of every ``interval``-th training epoch, the images
    ``indices`` of the validation set (the training set when there is no
    validation loop) go through the model; for each, the grid drawn by
    :func:`occam_plugin.visualization.draw_cam_grid` (the image, every exit's
    CAM of the target class over it, the exit the sample took) goes to
    ``runner.visualizer.add_image`` as ``cam_{index}`` at step = epoch. With
    ``LocalVisBackend`` that is ``<log_dir>/vis_data/vis_image/
    cam_{index}_{epoch}.png``; with ``TensorboardVisBackend`` an image event.

    Args:
        interval (int): Draw every ``interval`` epochs. Defaults to 1.
        indices (Sequence[int]): Dataset indices of the images to draw.
            Defaults to ``(0, 1, 2, 3)``.
        target (str): ``'gt'`` (ground-truth class CAM) or ``'pred'``
            (predicted class). Defaults to ``'gt'``.
        panel_size (int): Pixels of one grid panel. Defaults to 128.
    """
    priority = 'LOW'

    def __init__(self,
                 interval: int = 1,
                 indices: Sequence[int] = (0, 1, 2, 3),
                 target: str = 'gt',
                 panel_size: int = 128):
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'CAMVisualizationHook: interval={interval!r}; '
                             'expected a positive int (epochs).')
        if target not in ('gt', 'pred'):
            raise ValueError(f'CAMVisualizationHook: target={target!r}; '
                             "expected 'gt' or 'pred'.")
        if not indices:
            raise ValueError('CAMVisualizationHook: indices is empty; give '
                             'the dataset indices of the images to draw.')
        self.interval = interval
        self.indices = [int(i) for i in indices]
        self.target = target
        self.panel_size = panel_size

    @staticmethod
    def _dataset(runner):
        loop = runner.val_loop  # None when the config has no validation
        if loop is not None:
            return loop.dataloader.dataset
        return runner.train_dataloader.dataset

    def after_train_epoch(self, runner) -> None:
        if not self.every_n_epochs(runner, self.interval):
            return
        if not is_main_process():
            return
        self.draw(runner, step=runner.epoch + 1)

    def draw(self, runner, step: int) -> list:
        """Draw and log the grids; returns the names logged."""
        from occam_plugin.visualization import (collect_exit_cams,
                                                draw_cam_grid)
        dataset = self._dataset(runner)
        n = len(dataset)
        bad = [i for i in self.indices if not -n <= i < n]
        if bad:
            raise IndexError(f'CAMVisualizationHook: indices {bad} outside '
                             f'the dataset of {len(dataset)} images.')
        model = get_ori_model(runner.model)
        batch = pseudo_collate([dataset[i] for i in self.indices])
        records = collect_exit_cams(model, batch, target=self.target)
        classes = dataset.metainfo.get('classes')
        names = []
        for idx, rec in zip(self.indices, records):
            grid = draw_cam_grid(rec, class_names=classes,
                                 panel_size=self.panel_size,
                                 target=self.target)
            name = f'cam_{idx}'
            runner.visualizer.add_image(name, grid, step=step)
            names.append(name)
        return names
