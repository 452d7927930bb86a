"""Take the README's two screenshots of the real main window (offscreen Qt, no display needed):

    QT_QPA_PLATFORM=offscreen python scripts/take_screenshots.py [OUT_DIR]   (default docs/)

Opens an eval photo (a beach), paints a hole over the woman on a scooter and her shadow,
saves ``screenshot_mask.png``; fills with the app's default engine and settings, waits for
the last stage, turns on the before/after split with the divider right of the hole and saves ``screenshot.png``. Prints the
engine note and the status bar so the caption can be checked against what ran.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHOTO = ROOT.parent / "shared" / "data" / "eval" / "ginp_case3_raw.png"
# The woman, her scooter and her shadow, in the photo's pixels (680 x 512): a polygon, then
# widened like a brush stroke's soft margin.
OUTLINE = [(418, 362), (446, 364), (452, 400), (450, 440), (462, 468), (470, 492),
           (440, 494), (402, 480), (404, 458), (416, 420), (412, 392)]
MARGIN_PX = 7
# The compare view's divider (photo px): right of the hole, so its fill shows.
DIVIDER_X = 560


def hole_mask(shape: tuple[int, int]) -> np.ndarray:
    """``uint8 (H, W)``, 255 in the hole."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.array(OUTLINE, np.int32)], 255)
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MARGIN_PX + 1,) * 2))


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from inpaint_studio.ui.main_window import MainWindow

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    app = QApplication([])
    window = MainWindow()
    window.resize(1024, 760)
    window.show()

    def settle(seconds: float = 0.5) -> None:
        end = time.time() + seconds
        while time.time() < end:
            app.processEvents()
            time.sleep(0.01)

    if not window.files.open_path(str(PHOTO)):
        print(f"could not open {PHOTO}", file=sys.stderr)
        window.service.shutdown()
        return 1
    image = cv2.imread(str(PHOTO))
    window.canvas.refresh_layers(window.document.set_layer("mask", hole_mask(image.shape[:2])))
    settle()
    print("engine:", window.fill.engine_name)
    window.grab().save(str(out / "screenshot_mask.png"))
    window.start_fill()
    start = time.time()
    while (window.service.busy or time.time() - start < 1) and time.time() - start < 300:
        app.processEvents()
        time.sleep(0.02)
    settle()
    window.actions.split.setChecked(True)
    window.canvas.divider.setPos(DIVIDER_X, 0)  # the filled place on the "After" side
    settle()
    print("status:", window.status_label.text())
    window.grab().save(str(out / "screenshot.png"))
    # Not window.close(): with a fill pending it would ask whether to discard it. The worker
    # thread is stopped as the app's close does, so Qt does not destroy it while it runs.
    window.service.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
