# PGILoss on OccamResNet-18 (Colored MNIST): applied to every exit's
# gate-weighted CE; BiasMethodHook fills the method's training-set state.
_base_ = ['../occam_resnet18_colored_mnist.py']
model = dict(head=dict(method=dict(type='PGILoss')))
custom_hooks = [dict(type='OccamGateHook'), dict(type='BiasMethodHook')]
