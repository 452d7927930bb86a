"""Application entry point: ``python main.py [IMAGE]`` / ``inpaint-studio-gui [IMAGE]``."""

from __future__ import annotations

import argparse
import sys

from PySide6.QtWidgets import QApplication

from .. import __version__
from .main_window import MainWindow
from .settings import APPLICATION, ORGANIZATION


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="inpaint-studio-gui",
                                     description="Inpaint Studio: remove things from photos.")
    parser.add_argument("image", nargs="?", help="photo to open")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the app; returns the exit code of the event loop."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationVersion(__version__)
    window = MainWindow()
    window.show()
    window.service.warm_up()  # the first fill as fast as the next
    restored = window.offer_restore()
    if args.image and not restored:
        window.files.open_path(args.image)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
