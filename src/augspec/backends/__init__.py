"""Backends: the primitive namespace of one framework each (see ``base.py``)."""
