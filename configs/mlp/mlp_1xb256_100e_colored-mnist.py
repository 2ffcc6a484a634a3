# The Learning-from-Failure Colored MNIST model (`_base_/models/mlp.py`) on
# Colored MNIST.
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/mlp.py',
    '../_base_/datasets/colored_mnist.py',
    '../_base_/schedules/colored_mnist.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=10))
