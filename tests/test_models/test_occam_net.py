"""create_occam_model / OccamNet: timm's calling convention on an
OccamClassifier, training without mmengine, and export."""
import numpy as np
import pytest
import torch

import occam_plugin
from occam_plugin import OccamNet, create_occam_model

#: a small mmpretrain ResNet-18 (width 8): builds and runs in well under a
#: second at 16-32 px
TINY = dict(type='ResNet', depth=18, stem_channels=8, base_channels=8,
            out_indices=(0, 1, 2, 3))


@pytest.fixture(scope='module')
def tiny_net():
    torch.manual_seed(0)
    return create_occam_model('unused', num_classes=3, backbone=TINY).eval()


def test_forward_is_the_chosen_exit_of_the_exit_rule(tiny_net):
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        out = tiny_net.forward_exits(x)
        logits = tiny_net(x)
        # the mmpretrain path's exit rule (predict() adds only FLOP counts)
        clf = tiny_net.classifier
        results = clf.head.predict(clf.extract_feat(x))
    assert out.exit_logits.shape == (5, 4, 3) and out.gates.shape == (5, 4)
    for i, ds in enumerate(results):
        k = int(out.exit_idx[i])
        assert k == ds.exit_idx
        # the rule by hand: first exit >= 1 whose gate is >= 0.5, else 3
        passing = [j for j in range(1, 4) if out.gates[i, j] >= 0.5]
        assert k == (passing[0] if passing else 3)
        torch.testing.assert_close(logits[i], out.exit_logits[i, k])
        assert int(logits[i].argmax()) == int(ds.pred_label)
        torch.testing.assert_close(ds.exit_gates, out.gates[i])


def test_exit_threshold_moves_every_sample(tiny_net):
    x = torch.randn(4, 3, 32, 32)
    head = tiny_net.head
    old = head.exit_threshold
    try:
        head.exit_threshold = 0.0  # every gate passes: the first exit used
        assert tiny_net.forward_exits(x).exit_idx.tolist() == [1] * 4
        head.exit_threshold = 1.0  # a sigmoid stays below 1: the last exit
        assert tiny_net.forward_exits(x).exit_idx.tolist() == [3] * 4
    finally:
        head.exit_threshold = old


def test_timm_backbone_by_name_and_its_normalisation():
    net = create_occam_model('resnet10t', num_classes=4,
                             head=dict(min_inference_exit=2))
    assert isinstance(net, OccamNet) and net.training
    assert net.num_exits == 4 and net.num_classes == 4
    assert net.head.min_inference_exit == 2
    assert net.pretrained_cfg['mean'] == (0.485, 0.456, 0.406)
    assert net.classifier.backbone.timm_model.default_cfg is not None
    assert net.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match='num_classes must be an int >= 2'):
        create_occam_model('resnet18', num_classes=1)
    with pytest.raises(ValueError, match='timm options'):
        create_occam_model('x', num_classes=3, backbone=TINY, pretrained=True)
    with pytest.raises(TypeError, match='hidden_ratoi'):
        create_occam_model('x', num_classes=3, backbone=TINY,
                           neck=dict(hidden_ratoi=0.5))
    with pytest.raises(TypeError, match='wraps an OccamClassifier'):
        OccamNet(torch.nn.Linear(2, 2))


@pytest.mark.slow
def test_training_without_mmengine_learns_and_keeps_its_state():
    """A plain torch loop: the gate memory gets one row per training
    sample, the loss falls on a learnable toy task and the state_dict
    carries the memory."""
    torch.manual_seed(0)
    net = create_occam_model('unused', num_classes=2, backbone=TINY)
    n = 16
    y = torch.arange(n) % 2
    x = torch.randn(n, 3, 16, 16) * 0.1
    x[y == 1, 0] += 1.0  # class 1: a red image
    with pytest.raises(ValueError, match=r'targets must lie in \[0, 1\]'):
        net.prepare_training([0, 2])
    net.prepare_training(y.tolist())
    assert net.head.gate_loss.memory.shape == (n, 4)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for epoch in range(4):
        net.start_epoch(epoch)
        for idx in torch.arange(n).split(8):
            losses = net.loss(x[idx], y[idx], idx)
            opt.zero_grad()
            losses['loss'].backward()
            opt.step()
            first = float(losses['loss'].detach()) if first is None else first
    assert float(losses['loss'].detach()) < first
    assert set(losses) >= {'loss', 'loss_ce_e3', 'loss_gate_e3',
                           'loss_cam_supp_e0', 'acc_e3'}
    assert bool(net.head.gate_loss.written.any())
    state = net.state_dict()
    assert state['classifier.head.gate_loss.memory'].shape == (n, 4)
    with pytest.raises(ValueError, match='one of each per sample'):
        net.loss(x[:2], y[:3], torch.arange(2))
    net.eval()
    assert (net(x).argmax(1) == y).float().mean() >= 0.75


def test_torch_export_matches_eager(tiny_net):
    x = torch.randn(3, 3, 32, 32)
    batch = torch.export.Dim('batch', min=1, max=64)
    program = torch.export.export(tiny_net, (x, ),
                                  dynamic_shapes={'x': {0: batch}})
    other = torch.randn(6, 3, 32, 32)
    torch.testing.assert_close(program.module()(other), tiny_net(other))


@pytest.mark.slow
def test_onnx_export_agrees_with_onnxruntime(tiny_net, tmp_path):
    ort = pytest.importorskip('onnxruntime')
    x = torch.randn(2, 3, 32, 32)
    program = torch.onnx.export(
        tiny_net, (x, ), dynamo=True, input_names=['image'],
        output_names=['logits'],
        dynamic_shapes={'x': {0: torch.export.Dim('batch')}})
    path = str(tmp_path / 'occam.onnx')
    program.save(path)
    sess = ort.InferenceSession(path)
    other = torch.randn(5, 3, 32, 32)
    got = sess.run(None, {'image': other.numpy()})[0]
    np.testing.assert_allclose(got, tiny_net(other).detach().numpy(),
                               atol=1e-5, rtol=1e-4)


def test_top_level_names():
    assert occam_plugin.create_occam_model is create_occam_model
    assert 'create_occam_model' in occam_plugin.__all__
