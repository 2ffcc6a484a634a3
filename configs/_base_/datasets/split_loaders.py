# What the file-backed benchmarks share (BAR, Waterbirds, Biased MNIST,
# COCO-on-Places): one dataset read three times, 128 images a batch in
# persistent worker processes; train shuffled, val and test in order. A
# dataset config merges its dataset (type, root, pipeline) into the loaders:
#   train_dataloader = dict(dataset=dict(type=..., pipeline=train_pipeline))
#   val_dataloader = dict(
#       dataset=dict(train_dataloader['dataset'], pipeline=test_pipeline))
#   test_dataloader = val_dataloader  # merged: the split stays 'test'
train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(split='train'),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    train_dataloader,
    dataset=dict(split='val'),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = dict(val_dataloader, dataset=dict(split='test'))
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='BiasMetric')]
test_evaluator = val_evaluator
