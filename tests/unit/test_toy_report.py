"""The comparison picture: both clips' frames in two rows and both tracked paths in a panel."""

import numpy as np
import pytest
from PIL import Image

from motion_core.toy import world
from motion_core.toy.report import (GENERATED_COLOUR, REFERENCE_COLOUR, frame_columns, save_png, side_by_side)
from motion_core.toy.tracker import track


@pytest.fixture(scope="module")
def clips():
    reference = world.make_clip("circle", "red", "right", frames=12, seed=0)
    generated = world.make_clip("square", "blue", "down", frames=8, seed=1)
    return reference, generated


def test_frame_columns_spread_from_first_to_last():
    assert frame_columns(16, 8).tolist() == [0, 2, 4, 6, 9, 11, 13, 15]
    assert frame_columns(3, 8).tolist() == [0, 1, 2]


def test_the_rows_show_the_frames_and_the_panel_both_paths(clips):
    reference, generated = clips
    picture = side_by_side(reference.frames, generated.frames, track(reference.frames), track(generated.frames),
                           columns=4, scale=2)
    pixels = np.asarray(picture)
    rows_height = 32 * 2 * 2 + 4
    assert picture.size == (4 * (64 + 4) - 4 + 4 + rows_height, rows_height)
    first = (reference.frames[0] * 255).round().astype(np.uint8)
    assert np.array_equal(pixels[0:64:2, 0:64:2], first)  # top-left tile: the reference's first frame, 2x
    last_generated = (generated.frames[-1] * 255).round().astype(np.uint8)
    assert np.array_equal(pixels[68:132:2, 3 * 68:3 * 68 + 64:2], last_generated)
    panel = pixels[:, -rows_height:]
    for colour in (REFERENCE_COLOUR, GENERATED_COLOUR):
        assert (panel == colour).all(axis=-1).sum() > 50, f"no path drawn in {colour}"
    reference_rows = np.nonzero((panel[40:] == REFERENCE_COLOUR).all(axis=-1))[0]  # below the legend
    generated_columns = np.nonzero((panel[40:] == GENERATED_COLOUR).all(axis=-1))[1]
    assert np.ptp(reference_rows) < 16, "the reference moves right: its path is a horizontal band"
    assert np.ptp(generated_columns) < 16, "the generated clip moves down: its path is a vertical band"


def test_the_png_is_written_once_and_never_over_a_file(clips, tmp_path):
    reference, generated = clips
    picture = side_by_side(reference.frames, generated.frames, track(reference.frames), track(generated.frames))
    path = save_png(picture, tmp_path / "transfer.png")
    assert Image.open(path).size == picture.size
    with pytest.raises(ValueError, match="already exists"):
        save_png(picture, path)
