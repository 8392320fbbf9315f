# BAS on real COCO photos in VOC's 20 classes at the paper's recipe, for one GPU (or torchrun):
#   python run_pipeline.py --config configs/real_voc20_bas_gpu.py --cfg-options dataset.data_root=/data/coco
# Every stage as in configs/voc12_bas_r50.py: ResNet-50 with torchvision's ImageNet weights (from
# its cache, ~/.cache/torch/hub/checkpoints, or localizer.backbone.weights=/path/to/resnet50.pth:
# nothing is downloaded at run time), square 512 resize and 448 crops, plain SGD at lr 0.005
# (heads 0.05), bf16, the IRN-recipe CAM fused at export, IRN's label CRF on confident/uncertain
# seeds, IRN's random walk, DeepLabV3+ R101. The number of optimisation steps is the paper's
# (~6,600 at batch 16: 10 epochs of VOC's 10,582 images), not its epochs: on a COCO subset of a
# few hundred photos that is many more epochs. Not yet run on a GPU by this project (README).
_base_ = ['./voc12_bas_r50.py']

dataset = dict(
    _delete_=True,
    type='coco',
    data_root=None,  # required: --cfg-options dataset.data_root=/path/to/coco (train2017/, val2017/, annotations/)
    classes='voc20',
    negatives='drop',  # VOC's convention: every image shows one of its classes
)
# ~6,600 steps at batch 16 on the 385 training photos of ../shared/data/coco-real (24 steps an
# epoch); scale it to your set: epochs = 6600 * 16 / images.
train_localizer = dict(split='train', epochs=275, checkpoint_every_steps=500)
# IRN's 5 epochs of VOC (~3,300 steps at batch 16), and its boundary net's 3 (~1,000 at batch 32)
train_cam_partner = dict(split='train', epochs=138)
train_boundary = dict(epochs=83)
# The paper's scales (1.0, 0.5, 1.5, 2.0) around its 512-px training size; COCO's photos are
# ~640 px, so 512 px is 0.8 of a photo.
export_maps = dict(split='train', scales=(0.8, 0.4, 1.2, 1.6))
evaluate_maps = dict(score_split=None)  # seeds and pseudo-masks scored on the training photos (WSSS protocol)
check_premise = dict(images=60, step=8, offsets=(-32, 96), scale=0.8)
# ~160 passes over a few hundred pseudo-masks (VOC's 20k iterations are ~30 passes over 10,582)
train_segmenter = dict(iters=4000, checkpoint_interval=1000, val_split='val')
