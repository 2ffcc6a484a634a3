# GroupDRO on the plain mlp (Colored MNIST): only the head's method changes;
# BiasMethodHook fills the method's training-set state.
_base_ = ['./_base_/mlp_colored_mnist_debias.py']
model = dict(head=dict(method=dict(type='GroupDRO')))
custom_hooks = [dict(type='BiasMethodHook')]
