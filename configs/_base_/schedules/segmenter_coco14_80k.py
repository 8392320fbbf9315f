# Segmenter schedule for COCO 2014 (train pseudo-masks, val GT): the VOC recipe at 80k
# iterations, as WSSS papers train their COCO segmenters 4x longer.
_base_ = ['./segmenter_voc12_20k.py']

train_segmenter = dict(iters=80000, checkpoint_interval=8000)
