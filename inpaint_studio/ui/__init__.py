"""The desktop app (the only package that imports Qt).

``app.main`` starts it; ``main_window`` wires the concerns kept in their own modules:
``canvas`` (painting, zoom, result and heat-map display), ``worker`` (the fill thread),
``fill_controller``, ``files``, ``autosave``, ``settings``, ``dialogs``, ``train_dialog``.
"""
