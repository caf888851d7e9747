"""Peak extra memory of one upload: each image file is converted by explorer.uploads.image_from_bytes in a
fresh Python process, and the process's peak resident set (ru_maxrss) is read before and after.

    python bench/upload_memory.py

Prints one row per file: its size on disk, the peak RSS added by the conversion (MB), the wall time, and
what came back (the conversion's first step, or the error). The target (issue 16): under 100 MB for any
file within the upload limits (explorer.uploads.MAX_BYTES, MAX_SIDE).
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import resource, sys, time, json
sys.path.insert(0, sys.argv[1])
from explorer.uploads import image_from_bytes, UploadError
data = open(sys.argv[2], "rb").read()
image_from_bytes(open(sys.argv[3], "rb").read(), (1, 28, 28), 20)  # warm: imports and first-call allocations
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    x, steps = image_from_bytes(data, (1, 28, 28), 20, name="upload")
    what = steps[0]
except UploadError as e:
    what = "refused: " + str(e)[:90]
seconds = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"mb": (after - before) / 1024, "seconds": seconds, "what": what}))
"""


def png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def cases() -> dict[str, bytes]:
    side = 4096
    rng = np.random.default_rng(0)
    figure = np.zeros((side, side), np.uint8)
    figure[side // 4: 3 * side // 4, side // 2 - 200: side // 2 + 200] = 255
    text = PngImagePlugin.PngInfo()
    text.add_text("comment", "A" * (64 << 20), zip=True)  # 64 MB of zTXt that compresses to ~64 KB
    jpeg = io.BytesIO()
    Image.fromarray(figure).convert("RGB").save(jpeg, format="JPEG", quality=90)
    noise = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (2048, 2048, 3), dtype=np.uint8)).save(noise, format="JPEG", quality=95)
    bomb = bytearray(png(Image.new("L", (1, 1))))
    ihdr = bomb.index(b"IHDR")  # claim 60000 x 60000 pixels in a tiny file (Pillow's pixel limit must catch it)
    bomb[ihdr + 4: ihdr + 12] = (60000).to_bytes(4, "big") * 2
    bomb[ihdr + 17: ihdr + 21] = zlib.crc32(bytes(bomb[ihdr: ihdr + 17])).to_bytes(4, "big")
    return {
        "28x28 L png (a drawing)": png(Image.fromarray(figure).resize((28, 28))),
        "4096x4096 L png": png(Image.fromarray(figure)),
        "4096x4096 RGBA png": png(Image.fromarray(figure).convert("RGBA")),
        "3200x3200 RGBA png (largest colour)": png(Image.fromarray(figure[:3200, :3200]).convert("RGBA")),
        "4096x4096 16-bit png": png(Image.fromarray(figure.astype(np.uint16) * 257)),
        "4096x4096 RGB jpeg": jpeg.getvalue(),
        "2048x2048 RGB jpeg (noise)": noise.getvalue(),
        "zTXt text bomb (64 MB inflated)": png(Image.fromarray(figure[:64, :64]), pnginfo=text),
        "60000x60000 header bomb": bytes(bomb),
    }


def main() -> None:
    out = Path("/tmp") / "latent-explorer-upload-bench"
    out.mkdir(exist_ok=True)
    warm = out / "warm.png"
    Image.fromarray(np.pad(np.full((10, 10), 255, np.uint8), 9)).save(warm)
    print(f"| file | size | peak extra RSS (MB) | seconds | result |\n|---|---:|---:|---:|---|")
    for name, data in cases().items():
        path = out / "case.bin"
        path.write_bytes(data)
        res = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(path), str(warm)], capture_output=True,
                             text=True, timeout=300)
        if res.returncode:
            print(f"| {name} | {len(data) / 1024:,.0f} KB | - | - | crashed: {res.stderr.strip().splitlines()[-1][:90]} |")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"| {name} | {len(data) / 1024:,.0f} KB | {r['mb']:.1f} | {r['seconds']:.2f} | {r['what']} |")
    for p in out.iterdir():
        p.unlink()
    out.rmdir()


if __name__ == "__main__":
    main()
