"""Screenshots of the built site with headless Chromium: the landing page and a tutorial's results.

    python -m sphinx -b html docs /tmp/site
    python docs/figures/screenshots.py /tmp/site         # needs chromium (Debian: apt-get install chromium)

Writes ``docs/screenshots/landing.png`` and ``docs/screenshots/tutorial_<name>.png`` (the
tutorial's results section, content column only), re-saved with a 256-colour palette.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "screenshots"
WIDTH, HEIGHT = 1280, 1750
CONTENT = (348, 1150)  # the content column of furo's layout at this width


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("screenshots.py needs Chromium: apt-get install chromium")


def shoot(url: str, path: Path, height: int = HEIGHT) -> None:
    command = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += [f"--window-size={WIDTH},{height}", f"--screenshot={path}", url]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def top_of(page: Path, section: str) -> int:
    """The y of the element with id ``section`` in ``page``, read back from the rendered DOM."""
    script = (
        '<script>window.addEventListener("load",()=>{document.body.setAttribute("data-y",'
        f'String(document.getElementById("{section}").getBoundingClientRect().top+window.scrollY));}});</script>'
    )
    probe = page.with_name(f"_probe_{page.name}")
    probe.write_text(
        page.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8"
    )
    try:
        command = [
            chromium(),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=3000",
        ]
        command += [f"--window-size={WIDTH},{HEIGHT}", "--dump-dom", probe.as_uri()]
        dom = subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout
    finally:
        probe.unlink()
    return int(float(re.search(r'data-y="([0-9.]+)"', dom).group(1)))


def save(image: Image.Image, path: Path) -> None:
    image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built HTML site")
    parser.add_argument("--tutorial", default="fashion_mnist_convnet", help="the tutorial to show")
    parser.add_argument("--section", default="results-measured", help="the id of the section to show")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing.png"
        shoot((args.site / "index.html").resolve().as_uri(), landing)
        save(Image.open(landing), OUT / "landing.png")
        page = (args.site / "tutorials" / f"{args.tutorial}.html").resolve()
        top = max(0, top_of(page, args.section) - 30)
        tall = Path(tmp) / "tall.png"
        shoot(page.as_uri(), tall, height=top + 1600)
        save(
            Image.open(tall).crop((CONTENT[0], top, CONTENT[1], top + 1500)),
            OUT / f"tutorial_{args.tutorial}.png",
        )
    print(f"wrote {OUT / 'landing.png'} and {OUT / f'tutorial_{args.tutorial}.png'}")


if __name__ == "__main__":
    main()
