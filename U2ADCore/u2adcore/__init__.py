"""U2ADCore: the headless library behind U2AD Slicer.

Data flow, one sub-package per step: io (files -> Study) -> volume (orientation, slices,
preprocessing) -> levels -> model (EdgeMAE, masking) -> training / uncertainty (Monte-Carlo,
guided adaptation) -> scoring (maps, curve, scores, report) -> methods (detectors behind one
interface) -> evaluation. `cli` is the `u2ad` command.
"""
__version__ = "0.1.0"
