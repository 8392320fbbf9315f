# The CAM fused with BAS's maps at export (export_maps.fuse_cam='train_cam_partner'), trained by the
# train_cam_partner stage with IRN's recipe, as the BAS reference's fused CAM is
# (docs/method.md): ResNet-50, output stride 16, ImageNet init, BatchNorm statistics
# frozen, stem + layers 1-2 frozen, lr 0.1 (classifier 10x), 5 epochs, batch 16,
# long side 320-640, crop 512. IRN's optimiser has the same slip as BAS's (weight decay
# in SGD's momentum slot): momentum 0 reproduces its effective step exactly.
cam_partner = dict(
    backbone=dict(depth=50, output_stride=16, weights='IMAGENET1K_V1', frozen_bn=True, frozen_stages=2),
)
train_cam_partner = dict(
    epochs=5,
    batch_size=16,
    lr=0.1,
    momentum=0.0,
    crop=512,
    sync_bn=False,  # its BatchNorm statistics are frozen anyway
    checkpoint_every_steps=200,
)
