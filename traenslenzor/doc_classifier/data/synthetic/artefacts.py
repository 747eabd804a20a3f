"""Scan artefacts for synthetic pages: paper tone, contrast, skew, zoom, blur, noise, speckle, edges, JPEG.

RVL-CDIP pages are low-resolution fax/scanner images of paper documents; a classifier trained on clean renders
learns crisp-edge shortcuts that real scans do not have. Every artefact is drawn at the output resolution from
the page's own random generator, so a page is reproducible from (seed, split, index). ``strength`` scales all of
them (0 = the clean render).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def _tone(gray: np.ndarray, paper: float, ink: float) -> np.ndarray:
    """Map the render's 255 (paper) .. 0 (ink) onto ``paper`` .. ``ink`` gray levels."""
    return ink + gray.astype(np.float32) * ((paper - ink) / 255.0)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("L")


def _place(image: Image.Image, angle_deg: float, scale: float, shift: tuple[float, float]) -> Image.Image:
    """Rotate about the centre, scale and shift the page in one resampling (a skewed, zoomed, offset scan)."""
    theta = np.deg2rad(angle_deg)
    cos, sin = np.cos(theta) / scale, np.sin(theta) / scale
    cx, cy = image.width / 2, image.height / 2
    ox, oy = cx + shift[0], cy + shift[1]
    # Inverse map (output pixel -> page pixel), as Image.transform wants it.
    data = (cos, sin, cx - cos * ox - sin * oy, -sin, cos, cy + sin * ox - cos * oy)
    return image.transform(image.size, Image.AFFINE, data, resample=Image.BILINEAR, fillcolor=255)


def scan(image: Image.Image, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Apply scan artefacts to a grayscale render; returns a ``uint8`` array of the same size."""
    size = image.width
    if strength <= 0:
        return np.asarray(image, dtype=np.uint8).copy()
    paper = 255.0 - rng.uniform(0, 45) * strength
    ink = rng.uniform(0, 70) * strength
    angle = float(np.clip(rng.normal(0, 1.0), -3, 3)) * strength
    scale = float(np.exp(rng.uniform(-0.12, 0.1) * min(strength, 1.5)))
    shift = (float(rng.normal(0, 0.02 * size * strength)), float(rng.normal(0, 0.02 * size * strength)))
    image = _place(image, angle, scale, shift)
    blur = rng.uniform(0.0, 0.7) * strength * size / 128
    if blur > 0.15:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    arr = _tone(np.asarray(image), paper, min(ink, paper - 40))
    sigma = rng.uniform(0.0, 9.0) * strength
    arr += rng.normal(0.0, sigma, arr.shape).astype(np.float32)
    n_speckle = int(rng.poisson(rng.uniform(0.0, 0.0006) * size * size * strength))
    if n_speckle:
        ys, xs = rng.integers(0, size, n_speckle), rng.integers(0, size, n_speckle)
        arr[ys, xs] = rng.uniform(0, 120, n_speckle)
    if rng.random() < 0.15 * strength:  # dark scanner border on one side
        width = max(1, int(rng.uniform(0.005, 0.03) * size))
        side = rng.integers(0, 4)
        edge = (slice(None), slice(0, width)) if side == 0 else (slice(None), slice(size - width, size))
        if side >= 2:
            edge = (slice(0, width), slice(None)) if side == 2 else (slice(size - width, size), slice(None))
        arr[edge] = rng.uniform(10, 90)
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    if rng.random() < 0.5 * min(strength, 1.0):
        out = _jpeg(out, int(rng.integers(25, 90)))
    return np.asarray(out, dtype=np.uint8).copy()
