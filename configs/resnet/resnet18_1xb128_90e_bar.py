# Plain ResNet-18 on BAR: the baseline OccamResNet-18 is compared with
# (same data, schedule and runtime; one classifier on the last stage).
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/resnet18.py',
    '../_base_/datasets/bar.py',
    '../_base_/schedules/bar.py',
    '../_base_/default_runtime.py',
]
# the classifier keeps torch's default Linear init, as the reference's
# VariableWidthResNet (mmpretrain's head draws N(0, 0.01)): on BAR that init
# was the one model-side difference (docs/bar_parity.md)
model = dict(head=dict(num_classes=6, init_cfg=None))
