"""dicomweb-client, an independent DICOMweb client, fetches rendered frames of one instance from a
DICOMweb service as PNG and JPEG; each is decoded (Pillow) and compared pixel by pixel with
pydicom's decoding of the same file, windowed to 8 bits the way DICOM says (PS3.3 C.11.2.1.2.1:
Rescale Slope/Intercept, then the first Window Center/Width, or without one the frame's own
range; MONOCHROME1 inverted). Prints one JSON line per frame: PNG's largest difference (0 or 1:
rounding) and JPEG's mean difference (lossy).
Usage: rendered_compare.py URL FILE FRAME..."""
import io
import json
import sys

import numpy as np
import pydicom
from dicomweb_client.api import DICOMwebClient
from PIL import Image

url, path, frames = sys.argv[1], sys.argv[2], [int(f) for f in sys.argv[3:]]
ds = pydicom.dcmread(path)
client = DICOMwebClient(url)
arr = ds.pixel_array
if int(ds.get("NumberOfFrames", 1)) == 1:
    arr = arr[np.newaxis, ...]


def expected(n):
    a = arr[n - 1]
    if ds.PhotometricInterpretation == "RGB":
        return a.astype(np.float64)
    x = a.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    if "WindowCenter" in ds and "WindowWidth" in ds:
        c = float(ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter)
        w = float(ds.WindowWidth[0] if ds["WindowWidth"].VM > 1 else ds.WindowWidth)
        y = np.clip(((x - (c - 0.5)) / (w - 1) + 0.5) * 255, 0, 255)
        y[x <= c - 0.5 - (w - 1) / 2] = 0
        y[x > c - 0.5 + (w - 1) / 2] = 255
    else:
        lo, hi = x.min(), x.max()
        y = (x - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(x)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        y = 255 - y
    return y


def decode(data):
    img = Image.open(io.BytesIO(data))
    mode = "RGB" if ds.PhotometricInterpretation == "RGB" else "L"
    return np.asarray(img.convert(mode), dtype=np.float64), img.format


for n in frames:
    out = {"frame": n}
    want = expected(n)
    for media, key in (("image/png", "png"), ("image/jpeg", "jpeg")):
        data = client.retrieve_instance_frames_rendered(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [n], media_types=(media,)
        )
        got, fmt = decode(data)
        diff = np.abs(got - want)
        out[key] = {"format": fmt, "shape": list(got.shape), "max": float(diff.max()), "mean": float(diff.mean())}
    print(json.dumps(out))
