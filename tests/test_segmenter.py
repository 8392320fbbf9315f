"""The segmenter: mmcv-lite compatibility, mmseg config, weights, checkpoints, stages."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import models

from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.evaluation import MaskScore
from pipeline.plan import headline_figure
from pipeline.runner import Pipeline
from pipeline.segmenter import mmcv_compat
from pipeline.segmenter.checkpoints import history_buffer_statistic, mmengine_checkpoint_globals
from pipeline.segmenter.mmseg_config import SegmenterData, SegmenterModel, SegmenterSchedule, build_mmseg_config
from pipeline.segmenter.weights import torchvision_to_mmseg_resnet, write_backbone_init
from stages import STAGES
from pipeline.artifacts import MMSEG_CONFIG, MODEL_FILE
from stages.train_segmenter import WORK_DIR
from tests.conftest import TINY_CONFIG

UP_TO_PSEUDO_MASKS = ["prepare", "train_localizer", "export_maps", "evaluate_maps", "refine_masks"]


def manifest(run_dir, stage):
    return json.loads((run_dir / stage / "manifest.json").read_text())


@pytest.fixture(scope="module")
def pseudo_run(tmp_path_factory):
    """A tiny run up to the pseudo-mask data set, shared by the stage tests."""
    run_dir = tmp_path_factory.mktemp("pseudo_run")
    Pipeline(STAGES, load_config(TINY_CONFIG), run_dir).run(UP_TO_PSEUDO_MASKS)
    return run_dir


def link_upstream(src: Path, dst: Path) -> None:
    for name in UP_TO_PSEUDO_MASKS:
        os.symlink(src / name, dst / name)


# ---- mmcv-lite compatibility ---------------------------------------------------------------

def test_fallback_point_sample_reads_pixel_centres_in_both_point_layouts():
    x = torch.randn(2, 3, 4, 5)
    ys, xs = torch.meshgrid(torch.arange(4), torch.arange(5), indexing="ij")
    centres = torch.stack([(xs + 0.5) / 5, (ys + 0.5) / 4], -1).float()  # (4, 5, 2), x first
    grid = centres[None].expand(2, -1, -1, -1)
    assert torch.allclose(mmcv_compat.point_sample(x, grid), x, atol=1e-6)
    flat = mmcv_compat.point_sample(x, grid.reshape(2, 20, 2))
    assert flat.shape == (2, 3, 20) and torch.allclose(flat, x.reshape(2, 3, 20), atol=1e-6)


def test_fallback_is_what_mmseg_imports_and_other_ops_fail_clearly():
    if mmcv_compat.has_compiled_ops():
        pytest.skip("full mmcv with compiled ops is installed: the fallback is not used")
    import mmseg.models.decode_heads.point_head as point_head
    from mmcv.ops import sigmoid_focal_loss

    assert point_head.point_sample is mmcv_compat.point_sample
    with pytest.raises(ConfigError, match="mmcv.ops.sigmoid_focal_loss.*mmcv-lite"):
        sigmoid_focal_loss(torch.zeros(1), torch.zeros(1))
    with pytest.raises(ConfigError, match="mmcv.ops.DeformConv2d"):
        import mmcv.ops

        mmcv.ops.DeformConv2d(3, 3, 3)


def test_install_does_nothing_where_full_mmcv_has_compiled_ops(monkeypatch):
    monkeypatch.setattr(mmcv_compat, "has_compiled_ops", lambda: True)
    monkeypatch.delitem(sys.modules, "mmcv.ops")  # restored after the test
    assert mmcv_compat.install() is False
    assert "mmcv.ops" not in sys.modules


# ---- the mmseg config ----------------------------------------------------------------------

def seg_data(tmp_path, with_val=True) -> SegmenterData:
    return SegmenterData(
        classes=["background", "a", "b"], palette=[[0, 0, 0], [128, 0, 0], [0, 128, 0]],
        train_images=tmp_path / "JPEGImages", train_masks=tmp_path / "pseudo" / "SegmentationClass",
        train_list=tmp_path / "pseudo" / "train.txt",
        val_images=tmp_path / "JPEGImages" if with_val else None,
        val_masks=tmp_path / "SegmentationClass" if with_val else None,
        val_list=tmp_path / "val.txt" if with_val else None,
    )


def test_mmseg_config_trains_on_pseudo_masks_and_validates_on_gt(tmp_path):
    model = SegmenterModel(depth=18, weights=None, allow_random_init=True)
    cfg = build_mmseg_config(model, SegmenterSchedule(batch_size=8), seg_data(tmp_path), work_dir=tmp_path / "w",
                             backbone_checkpoint=tmp_path / "init.pth", world_size=2)
    train, val = cfg["train_dataloader"], cfg["val_dataloader"]
    assert train["batch_size"] == 4  # total batch over two processes
    assert train["dataset"]["data_prefix"]["seg_map_path"] == str(tmp_path / "pseudo" / "SegmentationClass")
    assert val["dataset"]["data_prefix"]["seg_map_path"] == str(tmp_path / "SegmentationClass")
    assert cfg["test_dataloader"]["dataset"]["ann_file"] == str(tmp_path / "val.txt")
    for loader in (train, val):
        meta = loader["dataset"]["metainfo"]
        assert meta["classes"] == ("background", "a", "b") and meta["palette"][1] == [128, 0, 0]
        assert loader["dataset"]["ignore_index"] == 255 and loader["dataset"]["reduce_zero_label"] is False
    net = cfg["model"]
    assert net["decode_head"]["num_classes"] == net["auxiliary_head"]["num_classes"] == 3
    assert net["decode_head"]["ignore_index"] == 255 and net["data_preprocessor"]["seg_pad_val"] == 255
    assert net["decode_head"]["type"] == "DepthwiseSeparableASPPHead" and net["decode_head"]["c1_in_channels"] == 64
    assert net["backbone"]["init_cfg"] == {"type": "Pretrained", "checkpoint": str(tmp_path / "init.pth")}
    assert net["backbone"]["norm_cfg"]["type"] == "BN"  # two processes on CPU: no SyncBN
    assert cfg["launcher"] == "pytorch" and cfg["resume"] is True
    gpus = build_mmseg_config(model, SegmenterSchedule(), seg_data(tmp_path), work_dir=tmp_path,
                              backbone_checkpoint=None, world_size=4, cuda=True)
    assert gpus["model"]["backbone"]["norm_cfg"]["type"] == "SyncBN"
    assert gpus["optim_wrapper"]["type"] == "OptimWrapper"  # the dataclass default: fp32
    bf16 = build_mmseg_config(model, SegmenterSchedule(amp="bf16"), seg_data(tmp_path), work_dir=tmp_path,
                              backbone_checkpoint=None, world_size=1, cuda=True)
    assert bf16["optim_wrapper"]["type"] == "BF16OptimWrapper"  # no loss scaler: no found_inf sync per step
    fp16 = build_mmseg_config(model, SegmenterSchedule(amp="fp16"), seg_data(tmp_path), work_dir=tmp_path,
                              backbone_checkpoint=None, world_size=1, cuda=True)
    assert (fp16["optim_wrapper"]["type"], fp16["optim_wrapper"]["dtype"]) == ("AmpOptimWrapper", "float16")
    on_cpu = build_mmseg_config(model, SegmenterSchedule(amp="bf16"), seg_data(tmp_path), work_dir=tmp_path,
                                backbone_checkpoint=None)
    assert on_cpu["optim_wrapper"]["type"] == "OptimWrapper"  # autocast is CUDA's
    assert load_config("configs/voc12_bas_r50.py").train_segmenter.amp == "bf16"
    with pytest.raises(ConfigError, match="train_segmenter.amp"):
        SegmenterSchedule(amp=True)
    single = build_mmseg_config(SegmenterModel(head="deeplabv3", depth=50), SegmenterSchedule(),
                                seg_data(tmp_path, with_val=False), work_dir=tmp_path, backbone_checkpoint=None)
    assert single["launcher"] == "none" and single["model"]["backbone"]["norm_cfg"]["type"] == "BN"
    assert single["model"]["decode_head"]["type"] == "ASPPHead" and single["model"]["decode_head"]["in_channels"] == 2048
    assert "val_dataloader" not in single and single["train_cfg"]["val_begin"] > single["train_cfg"]["max_iters"]


def test_mmseg_builds_and_runs_the_generated_model(tmp_path):
    from mmengine.config import ConfigDict
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    for head in ("deeplabv3plus", "deeplabv3"):
        model = SegmenterModel(head=head, depth=18, output_stride=16, weights=None, allow_random_init=True)
        cfg = build_mmseg_config(model, SegmenterSchedule(crop=(64, 64)), seg_data(tmp_path), work_dir=tmp_path,
                                 backbone_checkpoint=None)
        net = MODELS.build(ConfigDict(cfg["model"]))
        net.eval()
        meta = dict(img_shape=(64, 48), ori_shape=(64, 48), pad_shape=(64, 48))
        assert net.inference(torch.randn(1, 3, 64, 48), [meta]).shape == (1, 3, 64, 48)


def test_random_init_and_bad_choices_are_config_errors():
    with pytest.raises(ConfigError, match="allow_random_init"):
        SegmenterModel(weights=None)
    with pytest.raises(ConfigError, match="segmenter.head"):
        SegmenterModel(head="pspnet")
    with pytest.raises(ConfigError, match="one image per process"):
        build_mmseg_config(SegmenterModel(), SegmenterSchedule(batch_size=4), seg_data(Path("/x")),
                           work_dir=Path("/x"), backbone_checkpoint=None, world_size=4)
    with pytest.raises(ConfigError, match="not divisible"):
        build_mmseg_config(SegmenterModel(), SegmenterSchedule(batch_size=6), seg_data(Path("/x")),
                           work_dir=Path("/x"), backbone_checkpoint=None, world_size=4)


# ---- ImageNet weights into mmseg's ResNet --------------------------------------------------

def test_torchvision_weights_map_onto_mmseg_resnet_exactly(tmp_path):
    from mmseg.models.backbones import ResNet

    tv = models.resnet18(weights=None).eval()
    torch.save(tv.state_dict(), tmp_path / "r18.pth")
    path = write_backbone_init(SegmenterModel(depth=18, weights=str(tmp_path / "r18.pth")), tmp_path / "init.pth")
    mm = ResNet(depth=18)
    mm.eval()  # mmseg's ResNet.train() returns None
    mm.load_state_dict(torch.load(path, weights_only=True)["state_dict"], strict=True)
    x = torch.randn(1, 3, 64, 64)
    expected = torch.nn.Sequential(*list(tv.children())[:-2])(x)
    assert torch.allclose(mm(x)[-1], expected, atol=1e-5)
    with pytest.raises(ConfigError, match="do not fit mmseg's ResNet-34"):
        torchvision_to_mmseg_resnet(tv.state_dict(), 34)
    with pytest.raises(ConfigError, match="neither a torchvision weights name of ResNet-18"):
        write_backbone_init(SegmenterModel(depth=18, weights="IMAGENET9K"), tmp_path / "x.pth")


def test_packaged_efficientnet_weights_initialise_mmseg_timm_backbone_exactly(tmp_path):
    """The real-photo configs' segmenter: DeepLabV3+ on mmseg's TIMMBackbone starts from
    the ImageNet EfficientNet-Lite0 weights the localizer loads (no download)."""
    from mmseg.models.backbones import TIMMBackbone

    from pipeline.models.timm_backbone import timm_state_dict

    model = SegmenterModel(backbone="timm", timm_name="tf_efficientnet_lite0", output_stride=16, weights="packaged")
    path = write_backbone_init(model, tmp_path / "init.pth")
    mm = TIMMBackbone("tf_efficientnet_lite0", pretrained=False, out_indices=(1, 2, 3, 4), output_stride=16)
    mm.load_state_dict(torch.load(path, weights_only=True)["state_dict"], strict=True)
    packaged = timm_state_dict("tf_efficientnet_lite0", "packaged", 16, "segmenter.weights")
    assert torch.equal(mm.timm_model.conv_stem.weight, packaged["conv_stem.weight"])
    assert [f.shape[1] for f in mm.eval()(torch.randn(1, 3, 64, 64))] == [24, 40, 112, 320]


def test_the_localizers_backbone_initialises_the_segmenters_encoder(tmp_path):
    """segmenter.weights='localizer': mmseg's TIMMBackbone starts from the trained
    localizer's timm backbone, so both compute the same deep features on one image (the
    localizer re-normalises its input itself; the TIMM backbone gets timm's statistics)."""
    import torchvision.transforms.functional as TF
    from mmseg.models.backbones import TIMMBackbone

    from pipeline.images import IMAGENET_MEAN, IMAGENET_STD
    from pipeline.models import build_localizer, localizer_record
    from pipeline.training.checkpoint import save_checkpoint

    localizer = dict(type="cam", backbone=dict(type="timm", name="tf_efficientnet_lite0", output_stride=16,
                                               weights=None))
    trained, _ = build_localizer(localizer, 3)
    torch.manual_seed(0)
    with torch.no_grad():  # weights no init would give: the test sees them travel, not timm's defaults
        for p in trained.backbone.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_checkpoint(tmp_path / "model.pth", state_dict=trained.state_dict(), localizer=localizer_record(localizer),
                    num_classes=3)
    model = SegmenterModel(backbone="timm", timm_name="tf_efficientnet_lite0", output_stride=16, weights="localizer")
    path = write_backbone_init(model, tmp_path / "init.pth", localizer=tmp_path / "model.pth")
    mm = TIMMBackbone("tf_efficientnet_lite0", pretrained=False, out_indices=(1, 2, 3, 4), output_stride=16)
    mm.load_state_dict(torch.load(path, weights_only=True)["state_dict"], strict=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        mid, _ = trained.backbone.eval()(TF.normalize(x, IMAGENET_MEAN, IMAGENET_STD))
        ours = mm.eval()(TF.normalize(x, [0.5] * 3, [0.5] * 3))  # Lite0's own statistics
    assert torch.allclose(ours[2], mid, atol=1e-5)  # stride 16, 112 channels: the localizer's mid level
    with pytest.raises(ConfigError, match="segmenter.timm_name='tf_efficientnet_lite0'"):
        write_backbone_init(SegmenterModel(backbone="timm", timm_name="tf_efficientnet_lite1", weights="localizer"),
                            tmp_path / "x.pth", localizer=tmp_path / "model.pth")


@pytest.mark.parametrize("backbone", [dict(depth=18), dict(backbone="timm", timm_name="tf_efficientnet_lite0")])
def test_our_probabilities_are_mmseg_inference_models_on_one_image(tmp_path, backbone):
    """evaluate_segmenter's Predictor feeds the segmentor what mmseg's own inference does:
    its data preprocessor's channel order, mean and std (0.5 / 0.5 for the timm Lite0,
    ImageNet's for the ResNet), not a constant. One 96x120 image at the test scale
    (no resize on either side), compared with mmseg.apis.inference_model's softmax."""
    from mmengine.config import Config
    from mmseg.apis import inference_model
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from pipeline.segmenter.inference import Predictor

    register_all_modules()
    torch.manual_seed(0)
    model = SegmenterModel(output_stride=16, weights=None, allow_random_init=True, **backbone)
    cfg = build_mmseg_config(model, SegmenterSchedule(crop=(64, 64), scale=(120, 96)), seg_data(tmp_path),
                             work_dir=tmp_path, backbone_checkpoint=None)
    net = MODELS.build(Config(cfg).model).eval()
    net.cfg = Config(dict(cfg, test_pipeline=cfg["test_dataloader"]["dataset"]["pipeline"]))
    rgb = np.random.default_rng(0).integers(0, 256, (96, 120, 3), dtype=np.uint8)
    theirs = inference_model(net, rgb[..., ::-1].copy()).seg_logits.data.softmax(0).numpy()  # mmcv loads BGR
    ours = Predictor(net, base_scale=(120, 96)).probabilities(rgb)
    assert ours.shape == theirs.shape == (3, 96, 120)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


# ---- checkpoints under torch.load(weights_only=True) ----------------------------------------

def test_checkpoint_getattr_resolves_only_history_buffer_statistics():
    from mmengine.logging import HistoryBuffer

    assert history_buffer_statistic(HistoryBuffer, "mean") is HistoryBuffer.mean
    with pytest.raises(Exception, match="refusing"):
        history_buffer_statistic(np.ndarray, "tofile")
    with pytest.raises(Exception, match="refusing"):
        history_buffer_statistic(HistoryBuffer, "__init__")


# ---- the stages ----------------------------------------------------------------------------

def test_training_lowers_the_loss_and_writes_a_reusable_mmseg_config(pseudo_run, tmp_path):
    link_upstream(pseudo_run, tmp_path)
    cfg = load_config(TINY_CONFIG, {"train_segmenter.iters": 24, "train_segmenter.batch_size": 4})
    Pipeline(STAGES, cfg, tmp_path).run(["train_segmenter"])
    m = manifest(tmp_path, "train_segmenter")
    assert m["metrics"]["loss_end"] < m["metrics"]["loss_start"]
    from mmengine.config import Config

    written = Config.fromfile(str(tmp_path / "train_segmenter" / MMSEG_CONFIG))
    assert written.train_dataloader.dataset.data_prefix.seg_map_path.endswith("pseudo_masks/SegmentationClass")
    assert written.val_dataloader.dataset.data_prefix.seg_map_path == str(
        (pseudo_run / "prepare" / "VOC" / "SegmentationClass").resolve())
    # every global in mmengine's checkpoint is on the allow-list, and only under it does it load
    ckpt = tmp_path / "train_segmenter" / WORK_DIR / "iter_24.pth"
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(ckpt, map_location="cpu")
    with mmengine_checkpoint_globals():
        assert torch.load(ckpt, map_location="cpu")["meta"]["iter"] == 24
    assert set(torch.load(tmp_path / "train_segmenter" / MODEL_FILE, weights_only=True)) == {"state_dict", "meta"}


def test_interrupted_training_resumes_from_the_last_checkpoint(pseudo_run, tmp_path, monkeypatch):
    from mmengine.runner.loops import IterBasedTrainLoop

    link_upstream(pseudo_run, tmp_path)
    cfg = load_config(TINY_CONFIG, {"train_segmenter.iters": 6, "train_segmenter.checkpoint_interval": 3})
    p = Pipeline(STAGES, cfg, tmp_path)
    real_run_iter, iterations = IterBasedTrainLoop.run_iter, []

    def interrupted(loop, data_batch):
        if len(iterations) == 4:
            raise KeyboardInterrupt
        iterations.append(loop.iter)
        real_run_iter(loop, data_batch)

    monkeypatch.setattr(IterBasedTrainLoop, "run_iter", interrupted)
    with pytest.raises(KeyboardInterrupt):
        p.run(["train_segmenter"])
    assert iterations == [0, 1, 2, 3] and (tmp_path / "train_segmenter" / WORK_DIR / "iter_3.pth").is_file()
    iterations.clear()
    p.run(["train_segmenter"])
    assert iterations == [3, 4, 5]  # mmengine resumed after iteration 3
    m = manifest(tmp_path, "train_segmenter")
    assert m["resumed"] is True and m["artifacts"]["iterations"] == 6


def test_our_miou_equals_mmseg_iou_metric():
    from mmseg.evaluation import IoUMetric

    rng = np.random.default_rng(0)
    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = {"classes": ["bg", "a", "b", "c", "d"]}
    ours = MaskScore(5)
    for _ in range(6):
        gt = rng.integers(0, 4, (30, 40)).astype(np.uint8)  # class 4 never in GT
        gt[rng.random(gt.shape) < 0.1] = 255
        pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, 4, gt.shape)).astype(np.uint8)
        pred[pred == 255] = 0
        ours.add(pred, gt)
        metric.process({}, [{"pred_sem_seg": {"data": torch.from_numpy(pred)[None]},
                             "gt_sem_seg": {"data": torch.from_numpy(gt)[None]}}])
    theirs = metric.compute_metrics(metric.results)["mIoU"]
    assert abs(100 * ours.summary(list("01234"))["miou"] - theirs) <= 0.01


def test_evaluation_with_crf_scores_both_and_agrees_with_iou_metric(pseudo_run, tmp_path):
    link_upstream(pseudo_run, tmp_path)
    cfg = load_config(TINY_CONFIG, {"evaluate_segmenter.crf.enabled": True})
    p = Pipeline(STAGES, cfg, tmp_path)
    p.run(["train_segmenter", "evaluate_segmenter"])
    m = manifest(tmp_path, "evaluate_segmenter")
    assert m["info"]["mmseg_iou_metric_agrees"] is True
    assert headline_figure(m)[:2] == ("segmenter mIoU (val)", m["metrics"]["miou"])
    assert abs(m["metrics"]["miou"] - m["metrics"]["mmseg_iou_metric_miou"]) <= 1e-4
    assert set(m["metrics"]) >= {"miou", "miou_without_crf", "per_class_iou", "precision", "recall"}
    out = tmp_path / "evaluate_segmenter"
    val = (pseudo_run / "prepare" / "lists" / "val.txt").read_text().split()
    for folder in ("predictions", "predictions_without_crf"):
        assert sorted(f.stem for f in (out / folder).glob("*.png")) == sorted(val)
    from PIL import Image

    assert Image.open(out / "predictions" / f"{val[0]}.png").mode == "P"


@pytest.mark.heavy
def test_two_process_gloo_training_through_mmengine_launcher(pseudo_run, tmp_path):
    link_upstream(pseudo_run, tmp_path)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29519",
           "run_pipeline.py", "--config", TINY_CONFIG, "--work-dir", str(tmp_path), "--stage", "train_segmenter",
           "--cfg-options", "train_segmenter.batch_size=4"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    m = manifest(tmp_path, "train_segmenter")
    assert m["info"]["world_size"] == 2 and m["info"]["norm"] == "BN"
    assert (tmp_path / "train_segmenter" / MODEL_FILE).is_file()


def test_deferred_runtime_info_logs_the_same_history_with_one_transfer_per_interval():
    """The losses stay on the device between log intervals; the message hub ends with the
    values, in the order, that mmengine's own RuntimeInfoHook gives it."""
    from types import SimpleNamespace

    from mmengine.hooks import RuntimeInfoHook
    from mmengine.logging import MessageHub

    from pipeline.segmenter.throughput import DeferredRuntimeInfoHook

    outputs = [{"loss": torch.tensor(0.5 + i), "decode.acc_seg": torch.tensor([10.0 * i])} for i in range(7)]
    hubs = []
    for hook in (RuntimeInfoHook(), DeferredRuntimeInfoHook(interval=3)):
        runner = SimpleNamespace(message_hub=MessageHub(f"hub{len(hubs)}"), iter=0, max_iters=7)
        counts = []
        for i, out in enumerate(outputs):
            runner.iter = i
            hook.after_train_iter(runner, i, outputs=out)
            counts.append(len(runner.message_hub.get_scalar("train/loss").data[0])
                          if "train/loss" in runner.message_hub.log_scalars else 0)
        hubs.append((runner.message_hub, counts))
    (plain, plain_counts), (deferred, deferred_counts) = hubs
    assert deferred_counts == [0, 0, 3, 3, 3, 6, 7] and plain_counts == list(range(1, 8))
    for key in ("train/loss", "train/decode.acc_seg"):
        assert deferred.get_scalar(key).data[0].tolist() == plain.get_scalar(key).data[0].tolist()
