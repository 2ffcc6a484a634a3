# OccamNets' schedule (Shrestha et al., ECCV 2022, and its official code),
# one recipe for its datasets (Biased MNIST v2, COCO-on-Places, BAR; the
# 90-epoch length matches the BAR quick start): Adam, lr 1e-3, weight decay
# 5e-4, 90 epochs, lr x0.1 at epochs 50 and 70. The batch of 128 is set in
# the dataset config (train_dataloader.batch_size). fused: torch's one-kernel
# Adam (CPU and CUDA), the same update to float rounding, in a fraction of
# the per-parameter loop's time.
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=1e-3, weight_decay=5e-4, fused=True))

param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[50, 70], gamma=0.1)

train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# lr above is for a total batch of 128 (enable with --auto-scale-lr)
auto_scale_lr = dict(base_batch_size=128)
