# The baseline of the latent de-biasing experiment: the LfF MLP (3 x 100) on
# Binary Colored MNIST (target: digit 5-9, protected: colour), trained on the
# biased train split only. Its checkpoint is also the target classifier h_t
# of latent-debias_mlp_1xb256_20e_binary-colored-mnist.py.
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/mlp.py',
    './_base_/binary_colored_mnist.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=2))
