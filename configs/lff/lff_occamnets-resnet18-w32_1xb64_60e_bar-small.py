# Learning from Failure with OccamResNet-18 of base width 32 as the debiased
# model and a plain ResNet-18 of the same width as the biased one (BAR, the
# protocol `w32-112px-60e` of benchmarks/bar.py).
_base_ = ['./lff_occamnets-resnet18-w16_1xb64_60e_bar-small.py']
model = dict(
    biased_model=dict(backbone=dict(stem_channels=32, base_channels=32)),
    debiased_model=dict(backbone=dict(stem_channels=32, base_channels=32)))
