"""Pictures of what each exit looked at (CAM grids)."""
from .cam_grid import (collect_class_cams, collect_exit_cams, draw_cam_grid,
                       grid_size, raw_images_rgb)
from .class_names import dataset_class_names

__all__ = ['collect_class_cams', 'collect_exit_cams', 'dataset_class_names',
           'draw_cam_grid', 'grid_size', 'raw_images_rgb']
