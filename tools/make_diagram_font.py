"""Make ``baxiflow/data/fonts/DejaVuSans-subset.ttf``, the font PNG diagrams are drawn with.

Saving a diagram as PNG without the Graphviz program rasterises its SVG with resvg, which
draws text only in fonts it is given. baxiflow ships this one, so labels render the same on a
machine with no fonts installed: DejaVu Sans (the Bitstream Vera licence, kept beside it in
``LICENSE-DejaVu.txt``, allows subsetting under a name without "Bitstream" or "Vera"), cut down
to Latin, Greek, punctuation and arrows (38 kB instead of 760 kB). resvg still falls back on
the system's fonts for any other character. Run it with fontTools, from a DejaVu Sans file
(Debian's ``fonts-dejavu-core`` installs one):

    uv run --with fonttools python tools/make_diagram_font.py /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset

TARGET = Path(__file__).resolve().parent.parent / "baxiflow" / "data" / "fonts"
CHARACTERS = (
    "U+0020-007E,U+00A0-017F,"  # ASCII, Latin-1 (micro and multiplication signs) and Latin Extended-A
    "U+0391-03C9,"  # Greek
    "U+2010-203A,U+2212,"  # dashes, quotes, bullets, ellipsis, minus
    "U+2190-2199,U+2713,U+2717"  # arrows, check and cross marks
)


def main(source: str) -> None:
    subset.main(
        [
            source,
            f"--unicodes={CHARACTERS}",
            "--layout-features=kern,liga",
            "--no-hinting",
            "--drop-tables+=FFTM",
            f"--output-file={TARGET / 'DejaVuSans-subset.ttf'}",
        ]
    )


if __name__ == "__main__":
    main(sys.argv[1])
