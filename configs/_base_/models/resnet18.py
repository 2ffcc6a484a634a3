# Plain ResNet-18 (the baseline OccamResNet-18 is compared with).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet', depth=18, num_stages=4, out_indices=(3, ),
        style='pytorch',
        # as the reference: residual BNs start at 1 (mmpretrain zero-inits)
        zero_init_residual=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,  # set by the dataset config
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
    ))
