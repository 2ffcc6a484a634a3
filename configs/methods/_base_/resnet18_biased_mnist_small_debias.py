# The plain ResNet-18 of resnet18_biased_mnist_small.py with the method plug
# point (DebiasLinearClsHead, identical to LinearClsHead when method=None).
# Every plain-model method config of configs/methods/ starts from here.
_base_ = ['../../resnet18_biased_mnist_small.py']
model = dict(head=dict(type='DebiasLinearClsHead'))
