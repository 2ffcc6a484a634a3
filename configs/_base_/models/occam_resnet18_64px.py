# OccamResNet-18 for 64 px inputs (COCO-on-Places, Biased MNIST at low res):
# the paper's stem is a 3x3 stride-1 conv without max-pool, which is exactly
# mmpretrain's ResNet_CIFAR stem.
_base_ = ['./occam_resnet18.py']
model = dict(
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        stem_channels=58,
        base_channels=58,
        out_indices=(0, 1, 2, 3),
        style='pytorch'))
