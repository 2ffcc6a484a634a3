# OccamResNet-18 on BAR, CPU-sized (the CPU protocol of benchmarks/bar.py,
# chosen on the val split; docs/results.md): 112 px, a ResNet-18 trunk of
# base width 16 with the ImageNet stem (exits after the 4 stages at 28, 14, 7
# and 4 px), 60 epochs. Baseline with identical data/schedule/trunk:
# resnet/resnet18-w16_1xb64_60e_bar-small.py
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/occam_resnet18-w16.py',
    '../_base_/datasets/bar_small.py',
    '../_base_/schedules/bar_small.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=6))

val_evaluator = _base_.val_evaluator + _base_.occam_metrics
test_evaluator = val_evaluator
default_hooks = dict(logger=dict(type='LoggerHook', interval=10))
