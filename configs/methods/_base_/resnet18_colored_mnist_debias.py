# The plain ResNet-18 of resnet18_colored_mnist.py with the method plug point
# (DebiasLinearClsHead, identical to LinearClsHead when there is no method).
_base_ = ['../../resnet18_colored_mnist.py']
model = dict(head=dict(type='DebiasLinearClsHead'))
