# OccamResNet-18, CPU-sized (the `make demo` protocol): Biased MNIST at 48 px
# (biased_mnist_small), a ResNet-18 trunk of base width 8 with the 3x3
# stride-1 stem of the paper's low-resolution OccamResNet, 10 epochs.
# Baseline with identical data/schedule/trunk: resnet18_biased_mnist_small.py
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '_base_/models/occam_resnet18_64px.py',
    '_base_/datasets/biased_mnist_small.py',
    '_base_/schedules/biased_mnist_small.py',
    '_base_/default_runtime.py',
]
width = 8
model = dict(
    backbone=dict(stem_channels=width, base_channels=width),
    head=dict(num_classes=10),
    probe_size=48)

val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='BiasMetric'),
    dict(type='ExitMetric'),
]
test_evaluator = val_evaluator
custom_hooks = [dict(type='OccamGateHook'), dict(type='ExitFlopsHook')]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    # the demo compares final models: keep only the last checkpoint
    checkpoint=dict(type='CheckpointHook', interval=-1, save_last=True,
                    save_best=None, max_keep_ckpts=1))
