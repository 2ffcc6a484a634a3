# BAR (Biased Action Recognition, Nam et al. 2020): 6 actions, 224 px as in
# OccamNets. Get it from https://github.com/alinlab/BAR and place it as
# data/BAR/{train,test}/<class>_<id>.jpg (docs/datasets.md).
# Splits: train = train/ less every 10th image of each class (1,745), val =
# those held-out images (196; the rule is in the BAR dataset's docstring),
# test = test/ (654). Checkpoints are chosen on val, never on test.
_base_ = ['./image_files_224.py']
dataset_type = 'BAR'
data_root = 'data/BAR'

data_preprocessor = dict(num_classes=6)

train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
# BAR ships no validation split; ours is carved out of train/ (see above).
# Validating on test, as the reference code does, is the explicit
# reference-parity option: _base_/datasets/bar_test-as-val.py.
val_dataloader = dict(dataset=train_dataloader['dataset'])
test_dataloader = val_dataloader  # merged: each keeps its split
val_evaluator = [dict(type='Accuracy', topk=(1, ))]
test_evaluator = val_evaluator
