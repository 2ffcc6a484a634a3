# Waterbirds (Sagawa et al., ICLR 2020): CUB birds (landbird / waterbird)
# pasted on Places backgrounds (land / water), 95 % of the training birds on
# their own kind of place; 4 groups class x place, worst group usually
# waterbird/land or landbird/water. The group_DRO release
# (waterbird_complete95_forest2water2/, with metadata.csv: img_id,
# img_filename,y,split,place,place_filename; split 0/1/2 = train/val/test)
# is read as published by BiasAnnotatedDataset's format='waterbirds'
# (docs/datasets.md: "Your own data: BiasAnnotatedDataset").
# 224 px, the usual ImageNet-style pipeline (as group_DRO / SubpopBench:
# random resized crops for training; resize to 256/224 of the crop and centre
# crop for evaluation). Checkpoints are chosen on val, never on test.
_base_ = ['./image_files_224.py']
dataset_type = 'BiasAnnotatedDataset'
data_root = 'data/waterbird_complete95_forest2water2'

data_preprocessor = dict(num_classes=2)

train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    # group_DRO's augmentation: crops of 70-100 % of the image
    dict(type='RandomResizedCrop', scale=_base_.img_size,
         crop_ratio_range=(0.7, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackBiasInputs'),
]

train_dataloader = dict(
    dataset=dict(type=dataset_type, format='waterbirds', data_root=data_root,
                 pipeline=train_pipeline),
    # group-balanced sampling instead: dict(type='GroupBalancedSampler')
)
val_dataloader = dict(dataset=dict(type=dataset_type, format='waterbirds',
                                   data_root=data_root))
test_dataloader = val_dataloader  # merged: each keeps its split
# worst-group accuracy = bias/worst_group_acc, unbiased (mean group)
# accuracy = bias/unbiased_acc over the 4 groups; aligned / conflicting too
