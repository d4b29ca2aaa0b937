"""Reader for the IDX format of MNIST-family files (http://yann.lecun.com/exdb/mnist/).

    images = read_idx("train-images-idx3-ubyte.gz")   # uint8 [60000, 28, 28]

Layout (big-endian): two zero bytes, a type byte (0x08 = uint8), the number of dimensions, one
uint32 per dimension, then the data. Files may be gzipped; the gzip magic decides, not the name.
The data is read in chunks up to the size the header declares and no further, so a gzip bomb (a
small file that inflates to gigabytes) is refused after one byte too many, not after inflating.
"""

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DatasetFormatError
from .download import one_line

_GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CHUNK = 1 << 24   # bytes per read: memory grows with the data actually there, not with the header's claim


def read_idx(path) -> np.ndarray:
    """The array an IDX file holds (native byte order); DatasetFormatError if the file is not one."""
    path, gzipped = Path(path), False
    try:
        with open(path, "rb") as file:
            gzipped = file.read(2) == _GZIP_MAGIC
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as stream:
            return _parse(path, stream)
    except (OSError, EOFError, zlib.error) as error:   # gzip.BadGzipFile is an OSError
        if gzipped:
            raise DatasetFormatError(f"{path}: gzip data is truncated or corrupt ({one_line(error)}); "
                                     "download or copy the file again") from None
        raise DatasetFormatError(f"{path}: cannot be read ({one_line(error)})") from None


def _parse(path: Path, stream) -> np.ndarray:
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _DTYPES:
        raise DatasetFormatError(f"{path}: not an IDX file (expected the magic 00 00 <type> <ndim> "
                                 f"at offset 0, found {magic.hex(' ') or 'an empty file'})")
    dtype, ndim = np.dtype(_DTYPES[magic[2]]), magic[3]
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DatasetFormatError(f"{path}: IDX header cut short ({4 + len(dims)} bytes, expected {4 + 4 * ndim})")
    shape = struct.unpack(f">{ndim}I", dims)
    size = math.prod(shape) * dtype.itemsize   # Python ints: np.prod would wrap around at 2**63
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(min(size - len(data), _CHUNK))
        if not chunk:
            break
        data += chunk
    if len(data) < size or stream.read(1):
        found = f"{len(data):,} bytes" if len(data) < size else "more"
        raise DatasetFormatError(f"{path}: IDX header declares shape {shape}, {size:,} bytes of data, but the file "
                                 f"holds {found}; the file is truncated or not what its header says")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
