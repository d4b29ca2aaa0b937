"""Reader for the IDX format of MNIST-family files (http://yann.lecun.com/exdb/mnist/).

Layout (big-endian): two zero bytes, a type byte (0x08 = uint8), the number of dimensions, one
uint32 per dimension, then the data. Files may be gzipped; the gzip magic decides, not the name.
"""

import gzip
import struct
from pathlib import Path

import numpy as np

from ..errors import DatasetFormatError

_GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DatasetFormatError(f"{path}: gzip data is truncated or corrupt ({e}); "
                                     "download or copy the file again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DatasetFormatError(f"{path}: not an IDX file (expected the magic 00 00 <type> <ndim> "
                                 f"at offset 0, found {raw[:4].hex(' ') or 'an empty file'})")
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetFormatError(f"{path}: IDX header cut short ({len(raw)} bytes, expected {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetFormatError(f"{path}: IDX data is {len(raw)} bytes, expected {expected} for shape "
                                 f"{shape}; the file is truncated or not what its header says")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
