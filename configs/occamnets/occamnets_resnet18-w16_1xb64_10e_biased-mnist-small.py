# OccamResNet-18, CPU-sized (the `make demo` protocol): Biased MNIST at 64 px
# (biased_mnist_small), a ResNet-18 trunk of base width 16 with the ImageNet
# stem (7x7 stride-2 conv + max-pool), exits after the 4 stages at 16, 8, 4 and
# 2 px. The paper's 64 px OccamResNet has a 3x3 stride-1 stem
# (_base_/models/occam_resnet18_64px.py): 16x the FLOPs per stage, and on this
# data it does not learn the digits in a CPU budget (docs/results.md). Baseline
# with identical data/schedule/trunk:
# resnet/resnet18-w16_1xb64_10e_biased-mnist-small.py
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/occam_resnet18-w16.py',
    '../_base_/datasets/biased_mnist_small.py',
    '../_base_/schedules/biased_mnist_small.py',
    '../_base_/default_runtime_last-checkpoint.py',
]
model = dict(head=dict(num_classes=10), probe_size=64)

val_evaluator = _base_.val_evaluator + _base_.occam_metrics
test_evaluator = val_evaluator
