import pytest
import timm
import torch

from benchmark.core.errors import UserError
from benchmark.training.models import count_parameters, create_model

# Published sizes: ResNet-56 0.86M and ResNet-8 0.08M (100 classes, the authors' and
# RepDistiller's option-B shortcuts), ResNet-20 0.27M, WRN-40-2 2.2M, WRN-16-1 0.17M,
# WRN-28-10 36.5M, ResNet-18 11.2M (with a 100-class head).
PARAMS = [
    ("cifar_resnet56", 100, (3, 32, 32), 861_620),
    ("cifar_resnet8", 100, (3, 32, 32), 83_892),
    ("cifar_resnet20", 10, (3, 32, 32), 272_474),
    ("wrn_40_2", 100, (3, 32, 32), 2_255_156),
    ("wrn_16_1", 10, (3, 32, 32), 175_066),
    ("wrn_28_10", 10, (3, 32, 32), 36_479_194),
    ("small_resnet18", 100, (3, 32, 32), 11_220_132),
    ("mlp_80", 20, (14,), 14 * 80 + 80 + 80 * 20 + 20),
]


@pytest.mark.parametrize(("arch", "classes", "shape", "count"), PARAMS, ids=[p[0] for p in PARAMS])
def test_parameter_counts(arch, classes, shape, count):
    assert count_parameters(create_model(arch, classes, shape)) == count


def test_registered_names_reach_timm_create_model():
    from benchmark.training.models import register_timm

    register_timm()
    for name in ("cifar_resnet110", "wrn_16_8", "wrn_16_4", "mlp_50", "small_resnet34"):
        assert timm.is_model(name)
    m = timm.create_model("cifar_resnet14", num_classes=7, in_chans=1)
    assert m(torch.zeros(2, 1, 8, 8)).shape == (2, 7)
    create_model("mlp_77", 3, (5,))  # registered after register_timm(): timm learns it too
    assert timm.is_model("mlp_77")


@pytest.mark.parametrize(("arch", "shape"), [("cifar_resnet8", (1, 8, 8)), ("wrn_16_1", (3, 8, 8)),
                                             ("mlp_50", (14,))])
def test_suite_models_built_without_timm_equal_timms_build(arch, shape):
    """create_model builds suite models without timm; under one seed it gives timm's
    weights bit for bit (timm.create_model only calls the same builder)."""
    from benchmark.training.models import register_timm

    torch.manual_seed(3)
    direct = create_model(arch, 5, shape).state_dict()
    torch.manual_seed(3)
    in_chans = shape[0]  # channels of an image; the feature count of (14,)
    via = register_timm().create_model(arch, num_classes=5, in_chans=in_chans).state_dict()
    assert direct.keys() == via.keys()
    for k in direct:
        assert torch.equal(direct[k], via[k]), k


def test_a_suite_model_does_not_import_timm():
    import subprocess
    import sys

    code = ("import sys; from benchmark.training.models import create_model; "
            "create_model('mlp_50', 3, (14,)); create_model('cifar_resnet8', 3, (1, 8, 8)); "
            "print('timm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("arch", ["cifar_resnet8", "wrn_16_1", "small_resnet18", "mlp_50"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_forward_shapes_and_feature_head_split(arch, shape):
    torch.manual_seed(0)
    model = create_model(arch, 10, shape).eval()
    x = torch.randn(3, *shape)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        again = model.get_classifier()(feats)
    assert logits.shape == (3, 10) and feats.shape == (3, model.num_features)
    torch.testing.assert_close(again, logits, rtol=1e-5, atol=1e-6)


def test_any_mlp_width_and_small_timm_resnet_on_demand():
    assert count_parameters(create_model("mlp_37", 3, (5,))) == 5 * 37 + 37 + 37 * 3 + 3
    m = create_model("small_resnet26", 10, (3, 32, 32))
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert isinstance(m.maxpool, torch.nn.Identity)


def test_bad_architectures():
    with pytest.raises(UserError, match="unknown architecture 'resnet9000'"):
        create_model("resnet9000", 10, (3, 32, 32))
    with pytest.raises(UserError, match="needs image inputs"):
        create_model("cifar_resnet8", 10, (14,))
    with pytest.raises(UserError, match="6n\\+2"):
        from benchmark.training.models import CifarResNet

        CifarResNet(9)
