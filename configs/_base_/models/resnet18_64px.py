# ResNet-18 with the CIFAR stem (a 3x3 stride-1 conv, no max-pool) for small
# images (28-64 px), as _base_/models/occam_resnet18_64px.py for OccamNets.
_base_ = ['./resnet18.py']
model = dict(
    backbone=dict(type='ResNet_CIFAR', depth=18, out_indices=(3, ),
                  style='pytorch'))
