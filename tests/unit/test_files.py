"""Files the pack writes appear whole or not at all, and never replace an existing file."""

import threading

import pytest

from motion_core.errors import InputError
from motion_core.files import replace_file, write_new_file, write_numbered_file


def write_bytes(data):
    return lambda path: path.write_bytes(data)


def test_only_the_finished_file_is_left(tmp_path):
    path = write_new_file(tmp_path / "sub" / "a.bin", write_bytes(b"x"))
    assert path.read_bytes() == b"x" and [p.name for p in (tmp_path / "sub").iterdir()] == ["a.bin"]


def test_an_existing_file_is_refused_before_writing(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"old")
    calls = []
    with pytest.raises(InputError, match="'a.bin' already exists") as err:
        write_new_file(tmp_path / "a.bin", calls.append, input_name="filename")
    assert err.value.input_name == "filename" and not calls and (tmp_path / "a.bin").read_bytes() == b"old"


def test_a_file_appearing_while_writing_is_not_replaced(tmp_path):
    target = tmp_path / "a.bin"

    def slow_write(path):
        path.write_bytes(b"new")
        target.write_bytes(b"old")  # another process takes the name meanwhile

    with pytest.raises(InputError, match="already exists"):
        write_new_file(target, slow_write)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_failing_writer_leaves_nothing(tmp_path):
    def broken(path):
        path.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_new_file(tmp_path / "a.bin", broken)
    assert list(tmp_path.iterdir()) == []


def test_numbered_names_count_up_past_the_highest_and_keep_subfolders(tmp_path):
    (tmp_path / "motions").mkdir()
    (tmp_path / "motions" / "car_00007.bin").write_bytes(b"old")
    first = write_numbered_file(tmp_path, "motions/car", ".bin", write_bytes(b"a"))
    second = write_numbered_file(tmp_path, "motions/car", ".bin", write_bytes(b"b"))
    assert (first.name, second.name) == ("car_00008.bin", "car_00009.bin")
    assert (tmp_path / "motions" / "car_00007.bin").read_bytes() == b"old"


def test_concurrent_numbered_writes_get_distinct_names(tmp_path):
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(write_numbered_file(tmp_path, "x", ".bin",
                                                                                write_bytes(b"1"))))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({p.name for p in paths}) == 8 == len(list(tmp_path.iterdir()))


@pytest.mark.parametrize("prefix", ["../escape", "/etc/passwd", ""])
def test_prefixes_leaving_the_folder_are_refused(tmp_path, prefix):
    with pytest.raises(InputError, match="stays inside the output folder") as err:
        write_numbered_file(tmp_path / "out", prefix, ".bin", write_bytes(b"x"))
    assert err.value.input_name == "filename_prefix"


def test_replace_file_swaps_in_the_finished_file_and_keeps_the_old_one_when_writing_fails(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")

    def fail(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        replace_file(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    replace_file(target, lambda path: path.write_text("new"))
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_a_prefix_with_a_nul_character_is_refused_by_name(tmp_path):
    """Found by the fuzz tier: 'nul\\x00byte' as Save Motion Adapter's prefix raised a bare ValueError."""
    with pytest.raises(InputError, match="NUL character") as err:
        write_numbered_file(tmp_path, "nul\x00byte", ".bin", write_bytes(b"x"))
    assert err.value.input_name == "filename_prefix" and not list(tmp_path.iterdir())


@pytest.mark.parametrize("prefix", ["a" * 300, "sub/" + "b" * 300 + "/name", "é" * 110])
def test_a_prefix_too_long_for_a_file_name_is_refused_by_name(tmp_path, prefix):
    """Found by the fuzz tier: a 1 200-character prefix raised OSError (errno 36, file name too long).
    Names are counted in bytes (é is two), with the number and the temporary name's part."""
    with pytest.raises(InputError, match="too long for a file name") as err:
        write_numbered_file(tmp_path, prefix, ".bin", write_bytes(b"x"))
    assert err.value.input_name == "filename_prefix" and not list(tmp_path.iterdir())


def test_the_longest_prefix_that_fits_is_written(tmp_path):
    longest = "a" * (255 - len("_00001.bin") - len(f"..{'0' * 32}.tmp"))
    assert write_numbered_file(tmp_path, longest, ".bin", write_bytes(b"x")).name == f"{longest}_00001.bin"
    with pytest.raises(InputError, match="too long"):
        write_numbered_file(tmp_path, longest + "a", ".bin", write_bytes(b"x"))
