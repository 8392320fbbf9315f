# The default config shrunk for tests: a few small images, one short epoch.
_base_ = ['../configs/default.py']

dataset = dict(num_train=12, num_val=4, image_size=(64, 80))
train_localizer = dict(epochs=1, classifier_warmup_epochs=0, batch_size=4, crop=64, resize_long=(56, 64),
                       num_workers=0)
train_cam_partner = dict(epochs=1, batch_size=4, crop=64, resize_long=(56, 64), num_workers=0)
export_maps = dict(scales=(1.0, 0.5), num_workers=0, batch_size=4)
train_segmenter = dict(iters=4, batch_size=2, crop=(48, 48), scale=(80, 64), checkpoint_interval=2, log_interval=1,
                       num_workers=0)
evaluate_segmenter = dict(scales=(1.0, 0.5), flip=True)
