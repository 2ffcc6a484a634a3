# The Learning-from-Failure Colored MNIST model: an MLP with three hidden
# layers of 100 units on the flattened 28 px colour image.
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/datasets/colored_mnist.py',
    '../_base_/schedules/colored_mnist.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='DebiasImageClassifier',
    backbone=dict(type='MLPBackbone', in_channels=3, img_size=28,
                  hidden_dims=(100, 100, 100)),
    head=dict(
        type='DebiasLinearClsHead',
        num_classes=10,
        in_channels=100,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
)
