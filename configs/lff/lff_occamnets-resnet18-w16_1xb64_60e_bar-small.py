# Learning from Failure with OccamResNet-18 as the debiased model (BAR,
# CPU-sized): W multiplies every exit's CE; the biased model is a plain
# ResNet-18 (width 16) trained with GCE.
_base_ = [
    '../occamnets/occamnets_resnet18-w16_1xb64_60e_bar-small.py',
    '../_base_/models/lff_biased_resnet18_small.py',
]
model = dict(
    _delete_=True, type='LfFClassifier',
    biased_model=dict(_base_.lff_biased_model,
                      head=dict(_base_.lff_biased_model.head, num_classes=6)),
    debiased_model=_base_.model,
    biased_loss=dict(type='GeneralizedCELoss', q=0.7), ema_alpha=0.7)
