# The Learning-from-Failure Colored MNIST model: an MLP with three hidden
# layers of 100 units on the flattened 28 px colour image.
model = dict(
    type='PlainClassifier',
    backbone=dict(type='MLPBackbone', in_channels=3, img_size=28,
                  hidden_dims=(100, 100, 100)),
    head=dict(
        type='MethodLinearClsHead',
        num_classes=10,  # set by the dataset config
        in_channels=100,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
)
