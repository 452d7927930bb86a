"""Start the Inpaint Studio desktop app: ``python main.py [IMAGE]``."""

import sys

from inpaint_studio.ui.app import main

if __name__ == "__main__":
    sys.exit(main())
