# The default config shrunk for tests: a few small images, one short epoch.
_base_ = ['../configs/default.py']

dataset = dict(num_train=12, num_val=4, image_size=(64, 80))
train_localizer = dict(epochs=1, classifier_warmup_epochs=0, batch_size=4, crop=64, resize_long=(56, 64),
                       num_workers=0)
export_maps = dict(scales=(1.0, 0.5))
