# Learning from Failure's Colored MNIST schedule: Adam, lr 1e-3, batch 256
# (dataset config), 100 epochs, constant lr; fused Adam as in occamnets.py.
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=1e-3, weight_decay=0.0, fused=True))
param_scheduler = dict(type='ConstantLR', factor=1.0, by_epoch=True)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
