# The paper's localizer schedule, as the reference code runs it (docs/method.md, parity
# table): SGD lr 0.005 (heads 10x), weight decay 1e-4, poly 0.9, 10 epochs, total batch 16,
# square resize to 512 x 512, random flip, random crop 448, SyncBatchNorm, biases not
# trained. Momentum 0: the reference passes weight decay into SGD's momentum slot, so
# its real momentum is 1e-4; 0 reproduces its effective step exactly (0.9 would be ~10x).
train_localizer = dict(
    epochs=10,
    batch_size=16,  # total over all processes
    lr=0.005,
    momentum=0.0,
    resize='square',  # 'square': resize to side x side; 'long': long side drawn from resize_long
    resize_long=(512, 512),
    train_biases=False,
    checkpoint_every_steps=200,  # VOC train_aug: ~660 steps an epoch
)
