# COCO 2014 (README, 'Real data sets'): the COCO data set at year 2014. Set data_root once:
#   --cfg-options dataset.data_root=/data/coco
# which holds train2014/, val2014/ and annotations/instances_{train,val}2014.json.
_base_ = ['./coco.py']
dataset = dict(type='coco14', year=2014)
