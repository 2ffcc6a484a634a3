# The baseline of the latent de-biasing experiment: the LfF MLP (3 x 100) on
# Binary Colored MNIST (target: digit 5-9, protected: colour), trained on the
# biased train split only. Its checkpoint is also the target classifier h_t
# of latent-debias_mlp_1xb256_20e_binary-colored-mnist.py.
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    './_base_/binary_colored_mnist.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='DebiasImageClassifier',
    backbone=dict(type='MLPBackbone', in_channels=3, img_size=28,
                  hidden_dims=(100, 100, 100)),
    head=dict(
        type='DebiasLinearClsHead',
        num_classes=2,
        in_channels=100,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
)
