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
_base_ = [
    './occamnets_resnet18-w16_1xb256_10e_binary-colored-mnist.py',
    './_base_/latent_debias.py',  # G, the colour scorer, the flip
]
target_ckpt = ('work_dirs/'
               'occamnets_resnet18-w16_1xb256_10e_binary-colored-mnist/'
               'epoch_10.pth')

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        dataset={{_base_.train_dataloader.dataset}},
        target_scorer=dict(type='ClassifierScorer', model={{_base_.model}},
                           checkpoint=target_ckpt,
                           **_base_.latent_debias_target_input),
        **_base_.latent_debias))
