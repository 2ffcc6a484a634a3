# What the latent de-biasing leaf configs share on Binary Colored MNIST: the
# generator G (the plugin's ConvVAE trained on the coloured train images,
# the same for every classifier), the protected scorer (the colour,
# ColorScorer: green > red) and the flip's settings. A leaf adds the
# wrapped dataset and its target scorer h_t (its own baseline model), as
#   train_dataloader = dict(dataset=dict(
#       _delete_=True, dataset={{_base_.train_dataloader.dataset}},
#       target_scorer=dict(type='ClassifierScorer', model=..., checkpoint=...,
#                          **_base_.latent_debias_target_input),
#       **_base_.latent_debias))
# The flipped attribute (`color`) is the one FairnessMetric measures: the
# wrapper and the metric check it against the dataset's metainfo
# (protected_attribute='color', key bias_label).
generator_ckpt = 'work_dirs/generators/conv_vae_binary-colored-mnist.pth'
latent_debias = dict(
    type='LatentDebiasDataset',
    generator=dict(type='ConvVAE', latent_dim=16, out_channels=3,
                   checkpoint=generator_ckpt),
    protected_scorer=dict(type='ColorScorer', positive_channel=1,
                          negative_channel=0, attribute='color'),
    protected_attribute='color',
    protected_threshold=0.0,  # green > red: the dataset's colour 1 / 0
    num_pairs=2000,
    num_fit_samples=2000,
    fit_method='logistic',
    pair_label='shared',
    img_size=28)
# h_t reads the 28 px images as the classifiers do: pixels in [0, 1]
latent_debias_target_input = dict(input_size=28, mean=(0.0, 0.0, 0.0),
                                  std=(255.0, 255.0, 255.0))
