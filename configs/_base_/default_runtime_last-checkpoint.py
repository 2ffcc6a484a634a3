# The runtime of the runs that compare final models (`make demo`, the
# Biased MNIST benchmarks): only the last checkpoint is kept, none is chosen
# on validation.
_base_ = ['./default_runtime.py']
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=-1, save_last=True,
                    save_best=None, max_keep_ckpts=1))
