"""Write tests/data/mnist-mini: the first 300 training and first 200 test images of MNIST.

The subset keeps the original IDX format (gzip, mtime 0 so the bytes are reproducible) and
lets the default test suite run offline, without the full dataset.

    python scripts/make_mnist_mini.py --source /path/to/mnist --out tests/data/mnist-mini
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import struct
from pathlib import Path

from spikecast.datasets.idx import (
    IDX_FILES,
    IMAGES_MAGIC,
    LABELS_MAGIC,
    TEST_IMAGES,
    TRAIN_IMAGES,
    read_idx_dir,
)
from spikecast.datasets.loaders import MNIST_MD5

N_TRAIN, N_TEST = 300, 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="folder with the MNIST files")
    parser.add_argument("--out", type=Path, default=Path("tests/data/mnist-mini"))
    args = parser.parse_args()
    x_train, y_train, x_test, y_test = read_idx_dir(args.source, md5=MNIST_MD5)
    arrays = (x_train[:N_TRAIN], y_train[:N_TRAIN], x_test[:N_TEST], y_test[:N_TEST])
    args.out.mkdir(parents=True, exist_ok=True)
    for stem, a in zip(IDX_FILES, arrays, strict=True):
        if stem in (TRAIN_IMAGES, TEST_IMAGES):
            header = struct.pack(">IIII", IMAGES_MAGIC, *a.shape)
        else:
            header = struct.pack(">II", LABELS_MAGIC, len(a))
        data = gzip.compress(header + a.tobytes(), mtime=0)
        (args.out / f"{stem}.gz").write_bytes(data)
        print(f"{stem}.gz {len(data):,} bytes md5 {hashlib.md5(data).hexdigest()}")


if __name__ == "__main__":
    main()
