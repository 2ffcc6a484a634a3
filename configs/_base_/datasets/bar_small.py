# BAR, CPU-sized (the CPU protocol of benchmarks/bar.py, chosen on the val
# split; docs/results.md): the images of _base_/datasets/bar.py (same splits:
# train = train/ less every 10th image of a class, val = those, test = test/)
# at 112 px instead of 224, the decoded images kept in memory after the first
# epoch (about 390 MB for train/ and test/; the loaders run in the main
# process), channels-last batches (oneDNN's NHWC convolutions).
_base_ = ['./bar.py']
img_size = 112

data_preprocessor = dict(type='ChannelsLastDataPreprocessor')

train_pipeline = [
    dict(type='LoadImageFromFileChecked', cache_decoded=True),
    dict(type='RandomResizedCrop', scale=img_size),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackBiasInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked', cache_decoded=True),
    dict(type='ResizeEdge', scale=img_size * 8 // 7, edge='short'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackBiasInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    train_dataloader, batch_size=100, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
