# Plain ResNet-18 on BAR, CPU-sized at base width 32: the protocol
# `w32-112px-60e` of benchmarks/bar.py, chosen on the val split among the
# candidates at twice the width-16 protocol's compute (docs/results.md). The
# baseline of occamnets/occamnets_resnet18-w32_1xb64_60e_bar-small.py.
_base_ = ['./resnet18-w16_1xb64_60e_bar-small.py']
model = dict(backbone=dict(stem_channels=32, base_channels=32))
