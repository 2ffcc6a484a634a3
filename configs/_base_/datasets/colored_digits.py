# What Colored MNIST (`colored_mnist.py`) and Binary Colored MNIST
# (`latent_debias/_base_/binary_colored_mnist.py`) share: 28 px colour digits
# on black, built in memory, loaded 256 at a time in the main process; the
# dataset configs add their dataset and class count.
data_preprocessor = dict(
    # images are colour on black in [0, 255]: scale to [0, 1] as LfF does
    # (also the range of the latent de-biasing generator)
    mean=[0.0, 0.0, 0.0],
    std=[255.0, 255.0, 255.0],
    to_rgb=True,
)

# images are in memory (`img`): no loading step, no augmentation
train_pipeline = [dict(type='PackBiasInputs')]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(train_dataloader,
                      sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='BiasMetric')]
test_evaluator = val_evaluator
