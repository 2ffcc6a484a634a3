# Plain ResNet-18, CPU-sized: the baseline of
# occamnets/occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py with
# identical data, schedule and trunk (ResNet-18 of base width 16 with the
# ImageNet stem), one linear classifier on the last stage.
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/resnet18.py',
    '../_base_/datasets/biased_mnist_small.py',
    '../_base_/schedules/biased_mnist_small.py',
    '../_base_/default_runtime.py',
]
width = 16
model = dict(
    backbone=dict(stem_channels=width, base_channels=width),
    head=dict(num_classes=10))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=-1, save_last=True,
                    save_best=None, max_keep_ckpts=1))
