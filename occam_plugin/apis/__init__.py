"""Inference from Python on any occam-plugin config, strictly loaded.

    from occam_plugin.apis import OccamInferencer, init_occam_model
    inferencer = OccamInferencer('configs/occam_resnet18_bar.py',
                                 pretrained='work_dirs/occam_bar/epoch_90.pth')
    inferencer('climbing.jpg')[0]   # pred_label, pred_class, exit_idx, ...
    # a model of the zoo by name, with its published weights
    OccamInferencer('occamnets_resnet18-w16_1xb64_10e_biased-mnist-small')

Not imported by ``import occam_plugin`` (it pulls in mmpretrain.apis).
"""
from .model import init_occam_model
from .occam_inferencer import OccamInferencer

__all__ = ['init_occam_model', 'OccamInferencer']
