# OccamResNet-18 on Biased MNIST v2 (160 px, p_bias 0.95): the OccamNets
# paper's protocol. The plain baseline with identical data and schedule is
# resnet/resnet18_1xb128_90e_biased-mnist.py. Reported number:
# bias/unbiased_acc (test split).
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/occam_resnet18.py',
    '../_base_/datasets/biased_mnist.py',
    '../_base_/schedules/biased_mnist.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=10))

val_evaluator = _base_.val_evaluator + _base_.occam_metrics
test_evaluator = val_evaluator
