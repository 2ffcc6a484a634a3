# Plain ResNet-18 on Biased MNIST v2 (160 px, p_bias 0.95): the baseline of
# occamnets/occamnets_resnet18_1xb128_90e_biased-mnist.py, with identical data,
# schedule and runtime.
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/resnet18.py',
    '../_base_/datasets/biased_mnist.py',
    '../_base_/schedules/biased_mnist.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=10))
