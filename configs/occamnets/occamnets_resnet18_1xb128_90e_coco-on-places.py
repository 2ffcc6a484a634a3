# OccamResNet-18 on COCO-on-Places (64 px: the paper's 3x3 stride-1 stem
# without max-pool), OccamNets' schedule (Adam 1e-3, wd 5e-4, 90 epochs, lr
# x0.1 at 50 and 70). Baseline: resnet/resnet18_1xb128_90e_coco-on-places.py.
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/occam_resnet18_64px.py',
    '../_base_/datasets/coco_on_places.py',
    '../_base_/schedules/occamnets.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=9))
val_evaluator = _base_.val_evaluator + _base_.occam_metrics
test_evaluator = val_evaluator
