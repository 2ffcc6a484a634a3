# Learning from Failure on the plain ResNet-18 of base width 32 (BAR, the
# protocol `w32-112px-60e` of benchmarks/bar.py); the debiased model is a copy
# of the biased one, so one width sets both.
_base_ = ['./lff_resnet18-w16_1xb64_60e_bar-small.py']
model = dict(biased_model=dict(
    backbone=dict(stem_channels=32, base_channels=32)))
