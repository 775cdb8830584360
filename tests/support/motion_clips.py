"""Clips with known motion for the motion fidelity tests: a textured picture panned or zoomed, and a
textured patch moved along a path over a still textured background.

Every frame is an exact affine warp (OpenCV, bilinear) of one random texture, so each point's
displacement is known: the score between two such clips follows from the directions of their steps.
Frames are IMAGE tensors ``(frames, size, size, 3)`` float32 in [0, 1].
"""

import math

import cv2
import numpy as np
import torch


def texture(size: int, seed: int) -> np.ndarray:
    """``(size, size, 3)`` float32 in [0, 1]: smooth random blobs at two scales (plenty of corners)."""
    rng = np.random.default_rng(seed)
    picture = np.zeros((size, size, 3), np.float32)
    for cells, weight in ((max(2, size // 16), 0.5), (max(2, size // 5), 0.3), (max(2, size // 2), 0.2)):
        coarse = rng.random((cells, cells, 3), dtype=np.float32)
        picture += weight * cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(picture, 0, 1)


def _warp(picture: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    return cv2.warpAffine(picture, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _clip(pictures: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.clip(np.stack(pictures), 0, 1).astype(np.float32))


def pan(step: tuple[float, float], frames: int = 12, size: int = 96, seed: int = 0) -> torch.Tensor:
    """A window over a texture twice as large; the picture moves by ``step`` = (dx, dy) pixels a frame."""
    big = texture(2 * size, seed)
    start = size / 2
    return _clip([_warp(big, np.float32([[1, 0, -start + t * step[0]], [0, 1, -start + t * step[1]]]), size)
                  for t in range(frames)])


def zoom(rate: float, frames: int = 12, size: int = 96, seed: int = 0) -> torch.Tensor:
    """The texture scaled by ``rate`` per frame about the picture's centre (> 1 zooms in)."""
    big = texture(2 * size, seed)
    centre, source_centre = (size - 1) / 2, (2 * size - 1) / 2
    pictures = []
    for t in range(frames):
        scale = rate ** t
        pictures.append(_warp(big, np.float32([[scale, 0, centre - scale * source_centre],
                                               [0, scale, centre - scale * source_centre]]), size))
    return _clip(pictures)


def circle(frames: int = 12, radius: float = 24.0, turns: float = 1.0, phase: float = 0.0,
           mirrored: bool = False) -> np.ndarray:
    """``(frames, 2)`` offsets from the start of a uniform circular path (``phase`` in turns).

    ``mirrored`` negates every offset: each step goes exactly the opposite way.
    """
    angles = 2 * math.pi * (phase + turns * np.arange(frames) / frames)
    points = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    offsets = points - points[0]
    return -offsets if mirrored else offsets


def patch_along(offsets: np.ndarray, size: int = 96, patch: int = 32, seed: int = 0,
                background_seed: int | None = None) -> torch.Tensor:
    """A ``patch``-pixel textured square moved by ``offsets`` (from the picture's centre) over a still
    background: flat grey, or a texture from ``background_seed``."""
    background = (np.full((size, size, 3), 0.5, np.float32) if background_seed is None
                  else texture(size, background_seed))
    square = texture(patch, seed)
    mask = np.ones((patch, patch, 3), np.float32)
    pictures = []
    for dx, dy in offsets:
        move = np.float32([[1, 0, (size - patch) / 2 + dx], [0, 1, (size - patch) / 2 + dy]])
        placed = cv2.warpAffine(square, move, (size, size), flags=cv2.INTER_LINEAR)
        cover = cv2.warpAffine(mask, move, (size, size), flags=cv2.INTER_LINEAR)
        pictures.append(background * (1 - cover) + placed)
    return _clip(pictures)
