"""restore_core: state-space models for image restoration (MambaIR, CU-Mamba, FusionMamba, RNAN).

The library behind the executable book in ``book/``. Sub-packages:
``ssm`` (discretization, selective scan, 2D scan orders, SS2D), ``layers``, ``models``, ``data``, ``metrics``,
``train``, ``analysis``; ``cli`` is the ``restore-core`` command.
"""
__version__ = "0.1.0"
