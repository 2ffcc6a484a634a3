# GroupUpweighting on OccamResNet-18 (Biased MNIST, CPU-sized): applied to every exit's
# gate-weighted CE; BiasMethodHook fills the method's training-set state.
_base_ = ['../occam_resnet18_biased_mnist_small.py']
model = dict(head=dict(method=dict(type='GroupUpweighting')))
custom_hooks = [dict(type='OccamGateHook'), dict(type='BiasMethodHook')]
