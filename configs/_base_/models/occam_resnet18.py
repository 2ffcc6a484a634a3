# OccamResNet-18 (Shrestha et al., ECCV 2022): ResNet-18 trunk of base width
# 58 (the official default; plain ResNet-18 is 64), one exit after each of the
# 4 stages. Exit channels are read off the backbone by OccamClassifier, so a
# backbone swap edits only `backbone=`.
model = dict(
    type='OccamClassifier',
    backbone=dict(
        type='ResNet',
        depth=18,
        stem_channels=58,
        base_channels=58,
        out_indices=(0, 1, 2, 3),  # one map per stage -> one exit per stage
        style='pytorch',
        # as the reference: residual BNs start at 1 (mmpretrain zero-inits)
        zero_init_residual=False),
    neck=dict(
        type='ExitNeck',
        hidden_ratio=0.25,
        out_ratio=1.0,
        detach_exits=(0, ),  # exit 0 learns without changing the trunk
    ),
    head=dict(
        type='OccamHead',
        num_classes=1000,  # set by the dataset config
        min_inference_exit=1,
        exit_threshold=0.5,
        use_gates=True,
        cam_suppression=dict(type='CAMSuppressionLoss', loss_weight=0.1),
        exit_ce=dict(
            type='GateWeightedCELoss', gamma0=3.0, gamma=1.0, offset=0.1),
        gate_weighting=True,
        gate_loss=dict(
            type='ExitGateLoss',
            loss_weight=1.0,
            thresholds=(0.5, 0.6, 0.7, 0.8),
            min_epochs=1),
    ),
)

# what an OccamNet adds to its dataset's evaluator (per-exit accuracy, exit
# shares, expected compute); each Occam config appends it:
#   val_evaluator = _base_.val_evaluator + _base_.occam_metrics
occam_metrics = [dict(type='ExitMetric')]
