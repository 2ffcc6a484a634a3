# Plain ResNet-18, CPU-sized: the baseline of
# occamnets/occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py with
# identical data, schedule and trunk (ResNet-18 of base width 16 with the
# ImageNet stem), one linear classifier on the last stage.
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/resnet18-w16.py',
    '../_base_/datasets/biased_mnist_small.py',
    '../_base_/schedules/biased_mnist_small.py',
    '../_base_/default_runtime_last-checkpoint.py',
]
model = dict(head=dict(num_classes=10))
