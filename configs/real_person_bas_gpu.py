# real_voc20_bas_gpu.py in the one-class space {person}; person-free photos stay as negatives.
_base_ = ['./real_voc20_bas_gpu.py']
dataset = dict(classes=('person',), negatives='keep')
# One class: L_mcls needs the constant background logit (else it is identically 0).
localizer = dict(bas=dict(background_logit=True))
