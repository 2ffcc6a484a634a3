# The width-16 ResNet-18 of the CPU protocols (biased-mnist-small,
# bar-small): the stem and every stage at 1/4 of the paper's width.
_base_ = ['./resnet18.py']
width = 16
model = dict(backbone=dict(stem_channels=width, base_channels=width))
