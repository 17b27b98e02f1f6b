"""Write a small real-format image folder for checking the proxy on data that is not the embedded set.

    python benchmarks/make_glyphs.py /tmp/glyphs
    python benchmarks/make_glyphs.py /tmp/glyphs96 --size 96   # the same letters drawn larger (refinement checks)

Ten letters (A B C D E F G H K R) rendered with the fonts installed on the machine (fontconfig's usual
folders), 40 x 40 px, random size, offset and a small rotation: `train/<letter>/*.png` (300 a letter) and
`test/<letter>/*.png` (60 a letter) drawn from fonts the training split never uses, the layout
`scalesearch --data` reads (the test split is reported, never chosen on). Dark letters on light backgrounds:
a small plain CNN learns them in 4 epochs (0.96), which makes them a fair check of a proxy recipe
(benchmarks/RESULTS.md). Deterministic for a given font set and `--seed`.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

LETTERS = "ABCDEFGHKR"
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", str(Path.home() / ".fonts"))


def fonts() -> list[Path]:
    found = sorted(p for d in FONT_DIRS for p in Path(d).rglob("*") if p.suffix.lower() in (".ttf", ".otf"))
    # Symbol and dingbat fonts have no letters.
    return [p for p in found if not any(s in p.name for s in ("Symbol", "Dingbat", "D050000L"))]


def render(letter: str, font: Path, rng: random.Random, size: int = 40) -> Image.Image:
    fg = tuple(rng.randint(0, 90) for _ in range(3))
    bg = tuple(rng.randint(170, 255) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    scale = size / 40  # the layout was drawn for 40 px; larger images carry the same letters in more pixels
    face = ImageFont.truetype(str(font), round(rng.randint(20, 30) * scale))
    x0, y0, x1, y1 = draw.textbbox((0, 0), letter, font=face)
    jitter = round(3 * scale)
    draw.text(((size - (x1 - x0)) / 2 - x0 + rng.randint(-jitter, jitter),
               (size - (y1 - y0)) / 2 - y0 + rng.randint(-jitter, jitter)), letter, font=face, fill=fg)
    return img.rotate(rng.uniform(-10, 10), resample=Image.BILINEAR, fillcolor=bg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", type=int, default=40, help="image size in pixels (40 by default)")
    args = ap.parse_args()
    available = fonts()
    if len(available) < 10:
        raise SystemExit(f"found {len(available)} fonts in {', '.join(FONT_DIRS)}; need at least 10")
    held_out = set(available[::5])  # every fifth font draws only test images
    rng = random.Random(args.seed)
    for split, per_letter in (("train", 300), ("test", 60)):
        pool = [f for f in available if (f in held_out) == (split == "test")]
        for letter in LETTERS:
            folder = args.out / split / letter
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_letter):
                render(letter, rng.choice(pool), rng, args.size).save(folder / f"{i}.png")
    print(f"{args.out}: {len(LETTERS) * 360} images from {len(available)} fonts ({len(held_out)} for the test split)")


if __name__ == "__main__":
    main()
