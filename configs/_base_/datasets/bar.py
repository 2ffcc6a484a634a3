# BAR (Biased Action Recognition, Nam et al. 2020): 6 actions, 224 px as in
# OccamNets. Get it from https://github.com/alinlab/BAR and place it as
# data/BAR/{train,test}/<class>_<id>.jpg.
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

# BAR has no separate validation split: validate on the test split, as the
# official loaders do.
val_dataloader = dict(
    train_dataloader,
    dataset=dict(train_dataloader['dataset'], split='test',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = [dict(type='Accuracy', topk=(1, ))]

test_dataloader = val_dataloader
test_evaluator = val_evaluator
