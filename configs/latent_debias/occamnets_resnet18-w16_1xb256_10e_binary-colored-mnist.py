# The OccamNet baseline of the latent de-biasing experiment: OccamResNet-18 at
# width 16 (ResNet_CIFAR stem: 3x3, stride 1, no max-pool; 28 px) on Binary
# Colored MNIST, biased train split only. Its checkpoint is also h_t of
# latent-debias_occamnets-resnet18-w16_1xb256_10e_binary-colored-mnist.py.
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/occam_resnet18_64px.py',
    './_base_/binary_colored_mnist.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(stem_channels=16, base_channels=16),
    head=dict(num_classes=2),
    probe_size=28)
train_cfg = dict(max_epochs=10)
val_evaluator = _base_.val_evaluator + _base_.occam_metrics
test_evaluator = val_evaluator
