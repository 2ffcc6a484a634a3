# OccamResNet-18 on BAR at its historical path, so that
#   python tools/train.py configs/occam_resnet18_bar.py
# keeps working (work dir work_dirs/occam_resnet18_bar). The config itself is
# configs/occamnets/occamnets_resnet18_1xb128_90e_bar.py; this file only
# inherits it, and merges to the same config.
_base_ = ['./occamnets/occamnets_resnet18_1xb128_90e_bar.py']
