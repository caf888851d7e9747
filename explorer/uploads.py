"""Turn a user's image file into a dataset-format tensor, saying what was done to it.

:func:`image_from_bytes` reads a PNG or JPEG (or any still image Pillow reads), checks it,
and converts it the way the dataset's images were made: light-on-dark for MNIST and
Fashion-MNIST (inverted when the border is light), cropped to its content and fitted into the
dataset's content box (MNIST: 20 x 20, centred in 28 x 28, LeCun et al. 1998), grayscale or
RGB as the dataset has. Every step is reported in plain words for the app to show.
"""
from __future__ import annotations

import io
import re
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 10 * 1024 * 1024  # 10 MiB
MAX_SIDE = 4096  # pixels
MAX_DECODED = 40 * 2**20  # bytes of the decoded image (Pillow keeps 1 byte a pixel for L, P; 2 for I;16; 4 for
#   RGB, RGBA and the rest); decoding peaks near twice this, so an upload costs under 100 MB
WORK_SIDE = 512  # decoded images are reduced to at most this many pixels a side before any float array is made
MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I", "I;16", "F")


class UploadError(ValueError):
    """An uploaded file cannot be used; the message says why and what is allowed."""


def _bytes_per_pixel(mode: str) -> int:
    """Bytes a pixel takes in a decoded Pillow image of ``mode``."""
    return 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4


def _to_unit(img: Image.Image, steps: list[str], name: str = "upload") -> np.ndarray:
    """Pillow image -> float array (H, W, 3) in [0, 1], alpha composited on white.

    Raises:
        UploadError: a floating-point image with NaN or infinite values."""
    if img.mode in ("I", "I;16", "F"):
        a = np.asarray(img, dtype=np.float64)
        if not np.isfinite(a).all():
            raise UploadError(f"{name}: {int((~np.isfinite(a)).sum())} pixels are NaN or infinite; upload an image "
                              f"with finite values")
        lo, hi = float(a.min()), float(a.max())
        steps.append(f"rescaled {img.mode} values {lo:g}..{hi:g} to 0..1")
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode in ("LA", "PA", "RGBA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
        steps.append("alpha channel composited on white")
    elif img.mode != "RGB":
        steps.append(f"converted {img.mode} to RGB")
    return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0


def image_from_bytes(data: bytes, image_shape: tuple[int, int, int], content_size: int | None = None,
                     dark_background: bool = True, name: str = "upload") -> tuple[torch.Tensor, list[str]]:
    """Convert an uploaded image file to one dataset image.

    Args:
        data: the file's bytes.
        image_shape: ``(C, H, W)`` of the dataset, C = 1 or 3.
        content_size: side of the box the content is fitted into (MNIST 20); default H.
        dark_background: the dataset is light-on-dark (MNIST, Fashion-MNIST): an image whose
            border is lighter than its middle is inverted.
        name: the file name, for messages.
    Returns:
        ``(x, steps)``: x ``(1, C, H, W)`` float32 in [0, 1]; steps, the conversion in words.
    Raises:
        UploadError: empty or over ``MAX_BYTES``; not an image Pillow can decode (truncated, a
            decompression bomb in pixels or in text chunks, any decoder error, named); more than
            ``MAX_SIDE`` pixels on a side or ``MAX_DECODED`` bytes decoded; a mode outside
            ``MODES``; an animated image; NaN or infinite pixels; every pixel the same brightness
            (all white, all black, 1 x 1).

    Memory: the decoded image is reduced to ``WORK_SIDE`` pixels a side (JPEG at decode time with
    ``Image.draft``) before any float array is made; ``bench/upload_memory.py`` measures the peak.
    """
    c, h, w = image_shape
    if not data:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > MAX_BYTES:
        raise UploadError(f"{name}: {len(data) / 2**20:.1f} MiB is too large; the limit is {MAX_BYTES // 2**20} MiB")
    try:
        with warnings.catch_warnings():  # Pillow only warns between its pixel limit and twice that
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.verify()  # checks the file; the image must be reopened after
            img = Image.open(io.BytesIO(data))
            size = img.size
            if max(size) > MAX_SIDE:
                raise UploadError(f"{name}: {size[0]} x {size[1]} pixels is too large; the limit is "
                                  f"{MAX_SIDE} pixels on a side")
            if getattr(img, "n_frames", 1) > 1:
                raise UploadError(f"{name}: an animated image ({img.n_frames} frames); upload a still PNG or JPEG")
            if img.mode not in MODES:
                raise UploadError(f"{name}: image mode {img.mode!r} is not supported; allowed modes: "
                                  f"{', '.join(MODES)}")
            fmt, mode = img.format, img.mode
            img.draft(None, (WORK_SIDE, WORK_SIDE))  # JPEG: decode at 1/2 to 1/8 scale, never below WORK_SIDE
            decoded = img.size[0] * img.size[1] * _bytes_per_pixel(img.mode)
            if decoded > MAX_DECODED:
                raise UploadError(f"{name}: {size[0]} x {size[1]} pixels in mode {mode} decode to "
                                  f"{decoded / 2**20:.0f} MB; the limit is {MAX_DECODED // 2**20} MB (about "
                                  f"{int((MAX_DECODED / 4) ** 0.5)} x {int((MAX_DECODED / 4) ** 0.5)} in colour, "
                                  f"{MAX_SIDE} x {MAX_SIDE} in grayscale, any size as JPEG)")
            img.load()
            orientation = img.getexif().get(0x0112, 1)  # phone photos: the camera's orientation tag
            img = ImageOps.exif_transpose(img)
            if max(img.size) > WORK_SIDE:  # bounded memory: every later step works on a small image
                k = -(-max(img.size) // WORK_SIDE)  # box average over k x k blocks, without a full-size copy
                img = img.reduce(k) if img.mode not in ("1", "P", "I;16") else \
                    img.resize((max(1, img.size[0] // k), max(1, img.size[1] // k)), Image.Resampling.NEAREST)
    except UploadError:
        raise
    except UnidentifiedImageError:  # its message names the in-memory buffer, not the file
        raise UploadError(f"{name}: not an image file Pillow can read (PNG or JPEG expected)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UploadError(f"{name}: claims more pixels than any upload may have ({e}); the limit is {MAX_SIDE} "
                          f"pixels on a side") from None
    except Exception as e:  # noqa: BLE001 - Pillow's decoders raise many types (OSError, SyntaxError, EOFError, ...)
        detail = re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", name, str(e))[:200]
        raise UploadError(f"{name}: cannot be decoded as an image ({type(e).__name__}: {detail}); upload a PNG or "
                          f"JPEG") from None
    steps = [f"read a {size[0]} x {size[1]} {fmt or 'image'} in mode {mode}"]
    if orientation not in (1, None):
        steps.append(f"turned upright by its EXIF orientation tag ({orientation})")
    if max(img.size) < max(size):
        steps.append(f"reduced to {img.size[0]} x {img.size[1]} (at most {WORK_SIDE} pixels a side)")
    rgb = _to_unit(img, steps, name)  # (H0, W0, 3)
    a = rgb @ np.array([0.299, 0.587, 0.114]) if c == 1 else rgb
    if c == 1:
        steps.append("converted to grayscale (ITU-R 601 luma)")
    lum = a if a.ndim == 2 else a.mean(2)
    if float(lum.max() - lum.min()) < 1 / 255:
        raise UploadError(f"{name}: every pixel has the same brightness ({float(lum.mean()):.2f} of 1); nothing to "
                          f"encode: upload a figure on a plain background")
    border = np.concatenate([lum[0], lum[-1], lum[:, 0], lum[:, -1]]).mean()
    if dark_background and border > 0.5:
        a = 1.0 - a
        lum = 1.0 - lum
        steps.append(f"inverted: the border is light (mean {border:.2f}) and the dataset is light-on-dark")
    if dark_background:
        ys, xs = np.nonzero(lum > 0.1 * lum.max()) if lum.max() > 0 else (np.array([]), np.array([]))
        if len(ys):
            a = a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            steps.append(f"cropped to the content, {a.shape[1]} x {a.shape[0]} pixels")
    else:  # photos: centre square, as the datasets' own crops
        side = min(a.shape[0], a.shape[1])
        top, left = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
        a = a[top:top + side, left:left + side]
        steps.append(f"centre-cropped to {side} x {side}")
    box = content_size or h
    scale = box / max(a.shape[0], a.shape[1])
    new_w, new_h = max(1, round(a.shape[1] * scale)), max(1, round(a.shape[0] * scale))
    pil = Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8))
    small = np.asarray(pil.resize((new_w, new_h), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
    canvas = np.zeros((h, w) + (() if c == 1 else (3,)), dtype=np.float32)
    top, left = (h - new_h) // 2, (w - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = small
    steps.append(f"resized to {new_w} x {new_h} (a {box} x {box} box) and centred in {w} x {h}")
    x = torch.from_numpy(canvas)
    x = x[None, None] if c == 1 else x.permute(2, 0, 1)[None]
    return x.contiguous(), steps
