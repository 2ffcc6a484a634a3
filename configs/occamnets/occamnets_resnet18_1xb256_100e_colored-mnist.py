# OccamResNet-18 (low-resolution stem) on Colored MNIST, same data and
# schedule as resnet/resnet18_1xb256_100e_colored-mnist.py.
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/occam_resnet18_64px.py',
    '../_base_/datasets/colored_mnist.py',
    '../_base_/schedules/colored_mnist.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=10), probe_size=28)
val_evaluator = _base_.val_evaluator + _base_.occam_metrics
test_evaluator = val_evaluator
