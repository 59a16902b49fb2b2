"""Checks that ITK's NIfTI reader skips silently.

Measured with SimpleITK 2.5.7 (ITK's bundled niftilib):

* a truncated ``.nii`` or ``.nii.gz`` (cut anywhere after the 352-byte header) is read without
  any error or warning; the missing voxels come back as zeros;
* NaN and +/-Inf voxels of a float NIfTI are replaced by 0 while reading, again silently.

Both would let a broken file flow through the pipeline as if it were fine, so
:func:`check_nifti_payload` re-reads the raw bytes (inflating ``.gz`` chunk by chunk, never the
whole file in memory) and raises :class:`InputError`. Integer files whose gzip trailer already
shows the right size are not inflated at all.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autopaint_app.core.errors import InputError

# NIfTI datatype codes of the float types niftilib "fixes" (float32, float64).
_FLOAT_DATATYPES = {16: "f4", 64: "f8"}
_CHUNK_BYTES = 1 << 20


def is_nifti(path: Path) -> bool:
    """True for a ``.nii`` or ``.nii.gz`` file name."""
    return path.name.lower().endswith((".nii", ".nii.gz"))


def check_nifti_payload(path: str | os.PathLike) -> None:
    """Raise when a NIfTI file is truncated or holds NaN/Inf voxels.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file whose header SimpleITK can read.

    Raises:
        InputError: fewer bytes than the header promises, or non-finite float voxels.
    """
    path = Path(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    if not all(reader.HasMetaDataKey(key) for key in ("dim[0]", "bitpix", "vox_offset", "datatype")):
        return  # not a header niftilib describes; nothing to compare against
    ndim = int(reader.GetMetaData("dim[0]"))
    voxels = int(np.prod([int(reader.GetMetaData(f"dim[{i}]")) for i in range(1, ndim + 1)]))
    data_start = int(float(reader.GetMetaData("vox_offset")))
    expected = data_start + voxels * int(reader.GetMetaData("bitpix")) // 8
    float_code = _FLOAT_DATATYPES.get(int(reader.GetMetaData("datatype")))
    if float_code is None:
        present, non_finite = _payload_size(path, expected), 0
    else:
        present, non_finite = _scan_float_payload(path, data_start, expected, float_code)
    if present < expected:
        raise InputError(path, f"truncated file: {present} of the {expected} bytes its header promises are present")
    if non_finite:
        raise InputError(path, f"contains {non_finite} NaN or infinite voxel values")


def _payload_chunks(path: Path) -> Iterator[bytes]:
    """The file's uncompressed bytes in pieces; a corrupt gzip stream simply ends early."""
    with open(path, "rb") as stream:
        if not path.name.lower().endswith(".gz"):
            while chunk := stream.read(_CHUNK_BYTES):
                yield chunk
            return
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            while chunk := stream.read(_CHUNK_BYTES):
                yield inflater.decompress(chunk)
                while inflater.eof and inflater.unused_data:  # another gzip member follows
                    rest, inflater = inflater.unused_data, zlib.decompressobj(16 + zlib.MAX_WBITS)
                    yield inflater.decompress(rest)
        except zlib.error:
            return  # damaged from here on: what inflated so far is all there is


def _payload_size(path: Path, expected: int) -> int:
    """Uncompressed size of the file (up to where a gzip stream breaks off).

    Fast path: a gzip trailer stores the uncompressed size modulo 2**32; when it equals
    ``expected`` the file is whole and nothing is inflated.
    """
    if not path.name.lower().endswith(".gz"):
        return path.stat().st_size
    with open(path, "rb") as stream:
        stream.seek(-4, os.SEEK_END)
        if int.from_bytes(stream.read(4), "little") == expected % 2**32:
            return expected
    return sum(len(piece) for piece in _payload_chunks(path))


def _scan_float_payload(path: Path, data_start: int, data_end: int, float_code: str) -> tuple[int, int]:
    """Bytes present and count of non-finite values among the voxels ``[data_start, data_end)``."""
    position, non_finite, pending, dtype = 0, 0, bytearray(), None
    itemsize = np.dtype(float_code).itemsize
    for piece in _payload_chunks(path):
        if dtype is None and position + len(piece) >= 4:
            # sizeof_hdr (348 for NIfTI-1, 540 for NIfTI-2) tells the byte order.
            first = int.from_bytes(piece[:4], "little") if position == 0 else 348
            dtype = np.dtype(("<" if first in (348, 540) else ">") + float_code)
        low, high = max(data_start - position, 0), min(data_end - position, len(piece))
        if high > low:
            pending += piece[low:high]
        usable = len(pending) - len(pending) % itemsize
        if usable and dtype is not None:
            non_finite += int(np.count_nonzero(~np.isfinite(np.frombuffer(pending, dtype, usable // itemsize))))
            del pending[:usable]
        position += len(piece)
    return position, non_finite
