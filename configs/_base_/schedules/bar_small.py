# BAR, CPU-sized: OccamNets' optimiser (Adam, lr 1e-3, weight decay 5e-4) and
# its step schedule scaled to the shorter run (lr x0.1 at 5/9 and 7/9 of the
# epochs, as 50 and 70 of 90), validation every epoch on the val split.
_base_ = ['./occamnets.py']
max_epochs = 60
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True,
    milestones=[max_epochs * 5 // 9, max_epochs * 7 // 9], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=64)
