# The default run: the whole pipeline on the synthetic data set, on CPU.
_base_ = ['./_base_/runtime.py', './_base_/datasets/synthetic.py']
