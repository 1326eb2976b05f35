"""The built-in generators of ``Synthetic`` (``core/synthetic.py``): ``fractal`` and ``elastic``."""
