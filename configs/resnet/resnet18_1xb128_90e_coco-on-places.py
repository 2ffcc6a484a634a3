# Plain ResNet-18 (64 px stem of ResNet_CIFAR) on COCO-on-Places, the baseline
# of occamnets/occamnets_resnet18_1xb128_90e_coco-on-places.py with identical
# data and schedule.
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '../_base_/models/resnet18_64px.py',
    '../_base_/datasets/coco_on_places.py',
    '../_base_/schedules/occamnets.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=9))
