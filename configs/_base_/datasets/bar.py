# BAR (Biased Action Recognition, Nam et al. 2020): 6 actions, 224 px as in
# OccamNets. Get it from https://github.com/alinlab/BAR and place it as
# data/BAR/{train,test}/<class>_<id>.jpg (docs/datasets.md).
# Splits: train = train/ less every 10th image of each class (1,745), val =
# those held-out images (196; the rule is in the BAR dataset's docstring),
# test = test/ (654). Checkpoints are chosen on val, never on test.
dataset_type = 'BAR'
data_root = 'data/BAR'
img_size = 224

data_preprocessor = dict(
    num_classes=6,
    # ImageNet RGB statistics (mmpretrain default)
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)

train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='RandomResizedCrop', scale=img_size),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackBiasInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    # resize the short edge to 256/224 of the crop, then centre crop
    dict(type='ResizeEdge', scale=img_size * 8 // 7, edge='short'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackBiasInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

# BAR ships no validation split; ours is carved out of train/ (see above).
# Validating on test, as the reference code does, is the explicit
# reference-parity option: _base_/datasets/bar_test-as-val.py.
val_dataloader = dict(
    train_dataloader,
    dataset=dict(train_dataloader['dataset'], split='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = [dict(type='Accuracy', topk=(1, ))]

test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'], split='test'))
test_evaluator = val_evaluator
