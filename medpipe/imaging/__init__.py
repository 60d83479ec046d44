"""The imaging contract: the one way file bytes become model input, for every entry point.

``decode(data, name, policy) -> Decoded`` (format sniffing, pixel limits, EXIF, the 16-bit/float policy,
alpha, DICOM LUTs) then ``conform(pixels, size, channels)`` (grey <-> RGB, resize); ``load_image`` does
both with an :class:`ImageSpec` (``Preprocessing.spec`` for a trained model). Prepare, the server,
``medpipe predict``, ``medpipe monitor --images`` and the drift reference all call it.
"""

from medpipe.imaging.conform import (
    ImageSpec,
    ModelImage,
    conform,
    conform_stack,
    load_image,
    load_npy_stack,
    to_model_image,
)
from medpipe.imaging.decode import (
    DEFAULT_MAX_PIXELS,
    EXTENSIONS,
    FORMATS,
    SUPPORTED,
    Decoded,
    decode,
    decode_file,
    decode_npy_stack,
    from_array,
    sniff,
    to_8bit,
)
from medpipe.imaging.errors import ImageError
from medpipe.imaging.policy import DecodePolicy
from medpipe.imaging.preprocessing import FILENAME as PREPROCESSING_FILE
from medpipe.imaging.preprocessing import Preprocessing

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "EXTENSIONS",
    "FORMATS",
    "PREPROCESSING_FILE",
    "SUPPORTED",
    "DecodePolicy",
    "Decoded",
    "ImageError",
    "ImageSpec",
    "ModelImage",
    "Preprocessing",
    "conform",
    "conform_stack",
    "decode",
    "decode_file",
    "decode_npy_stack",
    "from_array",
    "load_image",
    "load_npy_stack",
    "sniff",
    "to_8bit",
    "to_model_image",
]
