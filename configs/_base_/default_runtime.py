# Runtime shared by every occam-plugin config (mmpretrain conventions).
default_scope = 'mmpretrain'
# mmengine's Runner plus occam-plugin's checkpoint guarantees (atomic saves,
# strict loading, no overwritten or deleted files of another run) and the
# `guard` hook (non-finite losses, class counts) for every model
runner_type = 'SafeRunner'
# registers SafeRunner and every occam-plugin component when a tool that
# does not import occam_plugin reads the config (mmpretrain's own tools)
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # one checkpoint per epoch, the best by validation accuracy kept as well
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                    save_best='auto'),
    # re-seeds the sampler each epoch (same shuffles on every rank)
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # RNG states travel in checkpoints, so a resumed run draws the same
    # augmentations as an uninterrupted one (occam_plugin)
    random_state=dict(type='RandomStateHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches this to gloo when CUDA is unavailable
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
