# Learning from Failure on the plain resnet18 (Colored MNIST): a GCE-trained
# biased copy + the debiased model weighted by W = L_B/(L_B+L_D).
_base_ = ['../resnet/resnet18_1xb256_100e_colored-mnist.py']
model = dict(
    _delete_=True, type='LfFClassifier', biased_model={{_base_.model}},
    biased_loss=dict(type='GeneralizedCELoss', q=0.7), ema_alpha=0.7)
