"""Make ``examples/demo.png``, the README's picture of ``affectreason demo``: the real server, the example clip
explained in Debian's chromium (driven by playwright), a full-page screenshot, shrunk to a small palette PNG.

    python examples/demo_screenshot.py [OUT.png]
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]


def main(out: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "affectreason.cli", "demo", "--port", "0"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=HERE.parent)
    try:
        url = next(line.split()[2] for line in server.stdout if line.startswith("demo at "))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                                 args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.click("#example")
            page.wait_for_selector("#summary .ar-label", timeout=120_000)
            page.wait_for_function("() => { const i = document.querySelector('#plot img');"
                                   " return i && i.complete && i.naturalWidth > 0 }")
            png = page.screenshot(full_page=True)
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.resize((960, round(image.height * 960 / image.width)), Image.LANCZOS)
    image.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"{out}: {image.width}x{image.height}, {out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "demo.png")
