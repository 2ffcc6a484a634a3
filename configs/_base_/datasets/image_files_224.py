# What BAR and Waterbirds share: 224 px photographs read from files,
# ImageNet RGB statistics (mmpretrain default), the usual ImageNet-style
# pipeline (random resized crops and flips for training; resize the short
# edge to 256/224 of the crop, then centre crop, for evaluation) and four
# worker processes. A dataset config adds its dataset and class count.
_base_ = ['./split_loaders.py']
img_size = 224

data_preprocessor = dict(
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
    dict(type='ResizeEdge', scale=img_size * 8 // 7, edge='short'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackBiasInputs'),
]

train_dataloader = dict(num_workers=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
