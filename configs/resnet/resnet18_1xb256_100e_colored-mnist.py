# Plain ResNet-18 on Colored MNIST (28 px: the 3x3 stride-1 stem without
# max-pool of ResNet_CIFAR), the baseline of
# occamnets/occamnets_resnet18_1xb256_100e_colored-mnist.py with identical data
# and schedule.
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/resnet18_64px.py',
    '../_base_/datasets/colored_mnist.py',
    '../_base_/schedules/colored_mnist.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=10))
