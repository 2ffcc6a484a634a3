# The width-16 OccamResNet-18 of the CPU protocols (biased-mnist-small,
# bar-small): the trunk of `resnet18-w16.py` with the OccamNet exits.
_base_ = ['./occam_resnet18.py']
width = 16
model = dict(backbone=dict(stem_channels=width, base_channels=width))
