# Latent-space de-biasing (Ramaswamy et al., CVPR 2021) of a width-16
# OccamResNet-18 on Binary Colored MNIST: the biased train split plus
# `num_pairs` generated pairs (G(z), G(z')) whose z' keeps the target score
# and flips the colour. Needs two checkpoints made offline
# (benchmarks/latent_debias.py makes both):
#   python tools/train_generator.py --dataset-config \
#       configs/latent_debias/mlp_1xb256_20e_binary-colored-mnist.py \
#       --out work_dirs/generators/conv_vae_binary-colored-mnist.pth
#   python tools/train.py \
#       configs/latent_debias/occamnets_resnet18-w16_1xb256_10e_binary-colored-mnist.py
# (h_t). G(z): the plugin's ConvVAE trained on the coloured train images
# (the same for both models); target scorer h_t: the baseline OccamResNet
# (its last exit; as in the paper); protected scorer: the colour
# (ColorScorer, green > red). The flipped attribute (`color`) is the one
# FairnessMetric measures: the wrapper and the metric check it against the
# dataset's metainfo (protected_attribute='color', key bias_label).
_base_ = ['./occamnets_resnet18-w16_1xb256_10e_binary-colored-mnist.py']
generator_ckpt = 'work_dirs/generators/conv_vae_binary-colored-mnist.pth'
target_ckpt = ('work_dirs/occamnets_resnet18-w16_1xb256_10e_binary-colored-mnist/'
               'epoch_10.pth')

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LatentDebiasDataset',
        dataset={{_base_.train_dataloader.dataset}},
        generator=dict(type='ConvVAE', latent_dim=16, out_channels=3,
                       checkpoint=generator_ckpt),
        target_scorer=dict(
            type='ClassifierScorer', model={{_base_.model}},
            checkpoint=target_ckpt, input_size=28,
            mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0)),
        protected_scorer=dict(type='ColorScorer', positive_channel=1,
                              negative_channel=0, attribute='color'),
        protected_attribute='color',
        protected_threshold=0.0,  # green > red: the dataset's colour 1 / 0
        num_pairs=2000,
        num_fit_samples=2000,
        fit_method='logistic',
        pair_label='shared',
        img_size=28))
