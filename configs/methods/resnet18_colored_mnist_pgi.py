# PGILoss on the plain resnet18 (Colored MNIST): only the head's method changes;
# BiasMethodHook fills the method's training-set state.
_base_ = ['./_base_/resnet18_colored_mnist_debias.py']
model = dict(head=dict(method=dict(type='PGILoss')))
custom_hooks = [dict(type='BiasMethodHook')]
