# OccamResNet-18 on BAR (Shrestha et al., ECCV 2022: 52.6 % test accuracy).
#   python tools/train.py configs/occam_resnet18_bar.py
# Any other CNN backbone, config only, e.g. a timm model (`_delete_=True`
# drops the ResNet-only keys):
#   --cfg-options model.backbone._delete_=True \
#       model.backbone.type=TIMMBackbone \
#       model.backbone.model_name=efficientnet_b0 \
#       model.backbone.features_only=True model.backbone.pretrained=False
# Validation (and the best checkpoint) on BAR's val split, carved out of
# train/; the CPU-sized pair: occamnets_resnet18-w16_1xb64_60e_bar-small.py
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
