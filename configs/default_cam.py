# The CAM baseline on the default synthetic run: same backbone, data and schedule.
_base_ = ['./default.py']

localizer = dict(type='cam')
