# The synthetic stand-in for VOC (pipeline/datasets/synthetic.py explains its design):
# every class has a small decisive part and a larger, less reliable body, on cluttered
# backgrounds with striped distractors in hue/angle pairs no class has. Deterministic from `seed`.
dataset = dict(
    type='synthetic',
    seed=0,
    num_train=240,
    num_val=60,
    num_classes=5,
    image_size=(128, 160),  # each side drawn from this range
    objects_per_image=(1, 3),
    classes_per_image=(1, 2),
    body_radius=(0.16, 0.32),  # fraction of the shorter image side
    part_radius=0.42,  # fraction of the body radius
    body_hue_spread=0.07,  # body hue std around the class mean (hue circle = 1)
    body_angle_spread=0.35,  # stripe angle std around the class mean, radians
    distractors=(2, 5),  # object-shaped background blobs per image (stripes in no class's hue/angle)
    occluder_prob=0.3,
    min_visible=0.5,
    void_width=1,  # 255 pixels on each side of an object boundary
    jpeg_quality=92,
)
