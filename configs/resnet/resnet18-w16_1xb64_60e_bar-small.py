# Plain ResNet-18 on BAR, CPU-sized: the baseline of
# occamnets/occamnets_resnet18-w16_1xb64_60e_bar-small.py (same data, schedule,
# trunk of base width 16; one classifier on the last stage).
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/resnet18-w16.py',
    '../_base_/datasets/bar_small.py',
    '../_base_/schedules/bar_small.py',
    '../_base_/default_runtime.py',
]
# the classifier keeps torch's default Linear init, as the reference's
# VariableWidthResNet (mmpretrain's head draws N(0, 0.01)): on BAR that init
# was the one model-side difference (docs/bar_parity.md)
model = dict(head=dict(num_classes=6, init_cfg=None))
default_hooks = dict(logger=dict(type='LoggerHook', interval=10))
