"""DICOM files written with pydicom for the tests (nothing downloaded): grey/colour, rescale, window,
MONOCHROME1/2, multi-frame, no pixel data, a compressed syntax with no decoder, and patient identities."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PATIENT_NAME_PREFIX = "Doe^Jane"  # PHI strings the PHI test looks for in every store
PATIENT_ID_PREFIX = "PID-SECRET-"


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    patient: str | None = "0001",
    study_uid: str | None = None,
    no_pixels: bool = False,
    transfer_syntax: str | None = None,
    modality: str = "CR",
) -> Path:
    """Write ``pixels`` (uint8/uint16/int16 (H, W), (F, H, W) or (H, W, 3) RGB) as a DICOM file at ``path``."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(transfer_syntax) if transfer_syntax else ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Manufacturer, ds.BodyPartExamined = modality, "TestVendor", "CHEST"
    if patient is not None:
        ds.PatientName = f"{PATIENT_NAME_PREFIX}{patient}"
        ds.PatientID = f"{PATIENT_ID_PREFIX}{patient}"
        ds.PatientBirthDate = "19700101"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.InstitutionName = "St Secret Hospital"
    colour = pixels.ndim == 3 and pixels.shape[-1] == 3 and photometric != "MONOCHROME2"
    frames = pixels.shape[0] if pixels.ndim == 3 and not colour else 1
    rows, cols = (pixels.shape[0], pixels.shape[1]) if colour or pixels.ndim == 2 else pixels.shape[1:3]
    ds.Rows, ds.Columns = rows, cols
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 1 if np.issubdtype(pixels.dtype, np.signedinteger) else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if not no_pixels:
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
        if transfer_syntax:  # an encapsulated (compressed) syntax: wrap the bytes as one fragment
            from pydicom.encaps import encapsulate

            ds.PixelData = encapsulate([ds.PixelData])
    ds.save_as(path, enforce_file_format=True)
    return Path(path)
