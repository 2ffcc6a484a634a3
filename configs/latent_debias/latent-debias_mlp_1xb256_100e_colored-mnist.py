# Latent-space de-biasing (Ramaswamy et al., CVPR 2021) on Colored MNIST with
# the LfF MLP. Needs two checkpoints made offline:
#   python tools/train_generator.py --out work_dirs/generators/conv_vae_mnist.pth
#   python tools/train.py configs/mlp/mlp_1xb256_100e_colored-mnist.py  # h_t
# G(z) is the plugin's ConvVAE decoder (grey digits); the protected attribute
# of the generated pairs is stroke thickness (InkMassScorer); h_t labels them.
_base_ = ['../mlp/mlp_1xb256_100e_colored-mnist.py']
generator_ckpt = 'work_dirs/generators/conv_vae_mnist.pth'
target_ckpt = 'work_dirs/mlp_1xb256_100e_colored-mnist/epoch_1.pth'

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LatentDebiasDataset',
        dataset={{_base_.train_dataloader.dataset}},
        generator=dict(type='ConvVAE', latent_dim=16,
                       checkpoint=generator_ckpt),
        target_scorer=dict(
            type='ClassifierScorer', model={{_base_.model}},
            checkpoint=target_ckpt, input_size=28,
            mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0)),
        protected_scorer=dict(type='InkMassScorer'),
        num_pairs=500,
        num_fit_samples=2000,
        fit_method='logistic',
        pair_label='shared',
        img_size=28))
# accuracy and the bias-aware metric, plus the paper's fairness metrics with
# the colour as the protected attribute
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='BiasMetric'),
    dict(type='FairnessMetric', protected_key='bias_label'),
]
test_evaluator = val_evaluator
