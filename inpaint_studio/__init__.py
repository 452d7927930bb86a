"""Inpaint Studio: deep image inpainting for the desktop.

Layers of the package (imports point one way, Qt only under ``ui``)::

    layers <- networks <- weights / engine <- cli / ui
"""

__version__ = "0.1.0"
