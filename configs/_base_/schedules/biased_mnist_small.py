# The Biased MNIST schedule shortened for the CPU demo: same optimiser
# (Adam, lr 1e-3, wd 5e-4), lr x0.1 at the same fractions of training
# (50/90 and 70/90 of the epochs).
_base_ = ['./biased_mnist.py']
max_epochs = 10
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True,
    milestones=[round(max_epochs * 50 / 90), round(max_epochs * 70 / 90)],
    gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
