"""A picture of one transfer: reference and generated frames side by side, both trajectories plotted.

Drawn with Pillow only (no plotting library): two rows of frames (reference on top, generated
below, up to ``columns`` frames each, evenly spaced), and a square panel on the right with the
tracked centres of both clips in frame coordinates (x right, y down, as on screen), each path
starting at a hollow circle.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..files import write_new_file
from .tracker import Track

REFERENCE_COLOUR = (255, 140, 0)
GENERATED_COLOUR = (0, 200, 255)
PANEL_BACKGROUND = (24, 24, 24)
GAP = 4


def frame_columns(frames: int, columns: int) -> np.ndarray:
    """Indices of up to ``columns`` frames spread evenly from the first to the last."""
    return np.unique(np.round(np.linspace(0, frames - 1, min(frames, columns))).astype(int))


def _strip(frames: np.ndarray, indices: np.ndarray, scale: int) -> Image.Image:
    """Frames ``(f, h, w, 3)`` in [0, 1] at ``indices``, enlarged ``scale``× (nearest), in one row."""
    tiles = [Image.fromarray((np.clip(frames[i], 0, 1) * 255).round().astype(np.uint8)) for i in indices]
    h, w = frames.shape[1] * scale, frames.shape[2] * scale
    strip = Image.new("RGB", (len(tiles) * (w + GAP) - GAP, h), PANEL_BACKGROUND)
    for k, tile in enumerate(tiles):
        strip.paste(tile.resize((w, h), Image.NEAREST), (k * (w + GAP), 0))
    return strip


def _plot_path(draw: ImageDraw.ImageDraw, track: Track, size: int, colour: tuple[int, int, int]) -> None:
    """The track's found centres as a polyline in a ``size``-pixel square (frame coordinates scaled)."""
    scale = np.array([size / track.width, size / track.height])
    points = [tuple(p) for p in (track.centres[track.found] * scale)]
    if len(points) > 1:
        draw.line(points, fill=colour, width=2)
    for x, y in points:
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
    if points:
        x, y = points[0]
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), outline=colour, width=2)


def side_by_side(reference: np.ndarray, generated: np.ndarray, reference_track: Track, generated_track: Track,
                 columns: int = 8, scale: int = 3) -> Image.Image:
    """The comparison picture (RGB).

    Args:
        reference, generated: frames ``(f, h, w, 3)`` float in [0, 1] (frame counts and sizes may differ).
        reference_track, generated_track: what ``tracker.track`` measured on each.
        columns: frames shown per row; scale: enlargement of each frame (nearest neighbour).
    """
    top = _strip(reference, frame_columns(len(reference), columns), scale)
    bottom = _strip(generated, frame_columns(len(generated), columns), scale)
    rows_height = top.height + GAP + bottom.height
    panel = Image.new("RGB", (rows_height, rows_height), PANEL_BACKGROUND)
    draw = ImageDraw.Draw(panel)
    _plot_path(draw, reference_track, rows_height, REFERENCE_COLOUR)
    _plot_path(draw, generated_track, rows_height, GENERATED_COLOUR)
    draw.text((4, 2), "reference", fill=REFERENCE_COLOUR)
    draw.text((4, 14), "generated", fill=GENERATED_COLOUR)
    width = max(top.width, bottom.width) + GAP + panel.width
    picture = Image.new("RGB", (width, rows_height), PANEL_BACKGROUND)
    picture.paste(top, (0, 0))
    picture.paste(bottom, (0, top.height + GAP))
    picture.paste(panel, (width - panel.width, 0))
    return picture


def save_png(picture: Image.Image, path: str | os.PathLike, input_name: str = "out") -> Path:
    """Write ``picture`` to a new PNG file (atomically; an existing file is never replaced)."""
    return write_new_file(Path(path), lambda temporary: picture.save(temporary, format="PNG"), input_name)
