# Plain ResNet-18 (the baseline OccamResNet-18 is compared with).
# PlainClassifier = mmpretrain's ImageClassifier whose head reads its
# in_channels from the backbone; MethodLinearClsHead = LinearClsHead plus the
# method plug point (identical without a method): a bias-mitigation method
# is one line, model = dict(head=dict(method=dict(type='GroupDRO'))).
model = dict(
    type='PlainClassifier',
    backbone=dict(
        type='ResNet', depth=18, num_stages=4, out_indices=(3, ),
        style='pytorch',
        # as the reference: residual BNs start at 1 (mmpretrain zero-inits)
        zero_init_residual=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='MethodLinearClsHead',
        num_classes=1000,  # set by the dataset config
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
    ))
