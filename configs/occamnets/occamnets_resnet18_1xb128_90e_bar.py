# OccamResNet-18 on BAR (Shrestha et al., ECCV 2022: 52.6 % test accuracy).
#   python tools/train.py configs/occam_resnet18_bar.py
# Any other CNN backbone, config only, e.g. a timm model:
#   --cfg-options model.backbone.type=TIMMBackbone \
#       model.backbone.model_name=efficientnet_b0 \
#       model.backbone.features_only=True model.backbone.pretrained=False \
#       model.backbone.out_indices="(1,2,3,4)"
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/occam_resnet18.py',
    '../_base_/datasets/bar.py',
    '../_base_/schedules/bar.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=6))

val_evaluator = _base_.val_evaluator + _base_.occam_metrics
test_evaluator = val_evaluator
