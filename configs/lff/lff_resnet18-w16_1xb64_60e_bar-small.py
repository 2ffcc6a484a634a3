# Learning from Failure on the plain ResNet-18 (BAR, CPU-sized): a GCE-trained
# biased copy + the debiased model weighted by W = L_B/(L_B+L_D). BAR has no
# bias labels; LfF needs none.
_base_ = ['../resnet/resnet18-w16_1xb64_60e_bar-small.py']
model = dict(
    _delete_=True, type='LfFClassifier', biased_model={{_base_.model}},
    biased_loss=dict(type='GeneralizedCELoss', q=0.7), ema_alpha=0.7)
