# OccamResNet-18 on BAR, CPU-sized at base width 32 (exits after the 4 stages
# at 28, 14, 7 and 4 px): the protocol `w32-112px-60e` of benchmarks/bar.py,
# chosen on the val split among the candidates at twice the width-16
# protocol's compute (docs/results.md). Baseline with identical data, schedule
# and trunk: resnet/resnet18-w32_1xb64_60e_bar-small.py
_base_ = ['./occamnets_resnet18-w16_1xb64_60e_bar-small.py']
model = dict(backbone=dict(stem_channels=32, base_channels=32))
