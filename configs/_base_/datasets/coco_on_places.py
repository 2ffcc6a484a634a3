# COCO-on-Places (Ahmed et al., ICLR 2021), as used by OccamNets: 9 COCO
# objects pasted on Places backgrounds, 64 px, the official h5py files in
# data/coco_on_places/<split>.h5py (train, validtest, idtest, sgtest,
# valsgtest, oodtest, valoodtest, anotest). Validation on `validtest`; the
# test split is `sgtest` (seen backgrounds, new object/background pairing);
# evaluate another one with
#   --cfg-options test_dataloader.dataset.split=oodtest
_base_ = ['./split_loaders.py']
dataset_type = 'COCOOnPlaces'
data_root = 'data/coco_on_places'

data_preprocessor = dict(
    num_classes=9,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)

# images are in memory (`img`, BGR uint8)
train_pipeline = [
    dict(type='RandomCrop', crop_size=64, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackBiasInputs'),
]
test_pipeline = [dict(type='PackBiasInputs')]

train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root,
                 pipeline=train_pipeline))
# val and test: the train dataset with another split, in order, unaugmented;
# the evaluators of split_loaders.py
val_dataloader = dict(dataset=dict(train_dataloader['dataset'],
                                   split='validtest', pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(val_dataloader['dataset'],
                                    split='sgtest'))
