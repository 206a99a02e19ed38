"""Data for training: MNIST-1D, the MNIST family, image folders, a DataLoader and transforms.

Only NumPy is needed to import this package.  Generating MNIST-1D needs the ``mnist1d`` package
and reading image folders needs Pillow; both come with ``pip install 'cnnlab[data]'`` and are
imported only when used.
"""

from cnnlab.data._named import IMAGE_SUFFIXES, Data, DataError, load_dataset
from cnnlab.data.cache import data_dir, search_dirs, user_cache_dir
from cnnlab.data.download import ChecksumError, DownloadError, download_file, file_digest
from cnnlab.data.idx import parse_idx, read_idx, write_idx
from cnnlab.data.images import ImageFolder, load_image
from cnnlab.data.loader import DataLoader, Dataset, TensorDataset
from cnnlab.data.mnist import DATASETS, DatasetNotFoundError, class_names, load_mnist
from cnnlab.data.mnist1d import MNIST1D_DEFAULTS, generate_mnist1d, load_mnist1d
from cnnlab.data.transforms import Compose, Normalize, RandomCrop, RandomShift, ToFloat, Transform, shift

__all__ = [
    "DATASETS",
    "IMAGE_SUFFIXES",
    "Data",
    "DataError",
    "MNIST1D_DEFAULTS",
    "ChecksumError",
    "Compose",
    "DataLoader",
    "Dataset",
    "DatasetNotFoundError",
    "DownloadError",
    "ImageFolder",
    "Normalize",
    "RandomCrop",
    "RandomShift",
    "TensorDataset",
    "ToFloat",
    "Transform",
    "class_names",
    "data_dir",
    "download_file",
    "file_digest",
    "generate_mnist1d",
    "load_dataset",
    "load_image",
    "load_mnist",
    "load_mnist1d",
    "parse_idx",
    "read_idx",
    "search_dirs",
    "shift",
    "user_cache_dir",
    "write_idx",
]
