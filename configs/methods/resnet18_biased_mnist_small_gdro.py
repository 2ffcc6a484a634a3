# GroupDRO on the plain ResNet-18 (Biased MNIST, CPU-sized): only the head's
# method changes; BiasMethodHook fills the method's training-set state.
_base_ = ['./_base_/resnet18_biased_mnist_small_debias.py']
model = dict(head=dict(method=dict(type='GroupDRO')))
custom_hooks = [dict(type='BiasMethodHook')]
