# OccamNet on a timm EfficientNet-B0 trunk, BAR: the backbone swap needs only
# the `backbone=` dict; the exits read their channels from timm's
# feature_info. features_only gives 5 maps (strides 2..32); the exits sit on
# the last 4, like the 4 stages of OccamResNet-18.
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = ['./occamnets_resnet18_1xb128_90e_bar.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='TIMMBackbone',
        model_name='efficientnet_b0',
        features_only=True,
        pretrained=False,
        out_indices=(1, 2, 3, 4)))
