# The biased model of LfF on an OccamNet (Colored MNIST): the plain ResNet-18
# of resnet/resnet18_1xb256_100e_colored-mnist.py, trained with GCE by
# LfFClassifier. Defines only `lff_biased_model`, so it can sit beside an Occam
# config in _base_.
lff_biased_model = dict(
    type='PlainClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, out_indices=(3, ),
                  style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='MethodLinearClsHead', num_classes=10))
