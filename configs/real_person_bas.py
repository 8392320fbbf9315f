# The one-class label space {person} on real photos: person-free images stay as negatives
# (background-only), which every localizer trains on (pipeline/models/base.py).
_base_ = ['./real_voc20_bas.py']
dataset = dict(classes=('person',), negatives='keep')
# One class: L_mcls needs the constant background logit (else it is identically 0).
localizer = dict(bas=dict(background_logit=True))
