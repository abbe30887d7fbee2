#!/usr/bin/env python3
"""Golden fixtures for the image data layer (data/image, data/resample,
data/imagefolder), written by the real upstream code: Pillow decodes, timm's
create_transform (torchvision Resize + CenterCrop + ToTensor + Normalize)
preprocesses, timm's find_images_and_targets orders a folder.

Run by hand (CI only reads the committed files):

    bash scripts/setup_fixture_env.sh                 # torch, torchvision, Pillow, timm
    bash scripts/fetch_sklearn_photos.sh              # china.jpg, flower.jpg into /tmp
    PYTHONPATH=/opt/timm /usr/bin/python3 scripts/make_image_fixtures.py

Writes tests/fixtures/images/: the source images (the two photos and small
generated JPEGs/PNGs of awkward kinds), expected.safetensors (U8 and F32
tensors), cases.txt (what each tensor is) and folder_order.txt. Deterministic:
fixed seeds, no timestamps.
"""
import argparse
import io
import warnings
import os
import re
import shutil
import struct
import sys
import tempfile
import zlib

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image, features

import timm
from timm.data import create_transform
from timm.data.readers.reader_image_folder import find_images_and_targets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "images")
# files whose every truncation is checked against Pillow's verdict
CUT_FILES = ["g_odd_420.jpg", "g_progressive.jpg", "g_cmyk.jpg", "g_gray.jpg", "g_tiny.jpg",
             "g_interlaced.png", "g_palette.png", "g_gray16.png", "g_rgb16.png", "g_interlaced_gray4.png"]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for byte in b:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def fnv1a64_np(a):
    """FNV-1a over bytes, vectorised over nothing: fast enough for 1 MB."""
    return fnv1a64(a.tobytes())


# ----------------------------------------------------------------- sources ---

def synth(w, h, seed):
    """Gradients, a sinusoid, hard black/white/colour rectangles and noise:
    smooth areas, edges that make bicubic overshoot and clip, and texture."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    img[..., 0] = 128 + 100 * np.sin(x / max(w, 2) * 6.3 + y / max(h, 2) * 2.1)
    img[..., 1] = 255 * x / max(w - 1, 1)
    img[..., 2] = 255 * (1 - y / max(h - 1, 1))
    for i in range(5):
        x0, x1 = sorted(r.integers(0, w + 1, 2))
        y0, y1 = sorted(r.integers(0, h + 1, 2))
        img[y0:y1, x0:x1] = [(0, 0, 0), (255, 255, 255), tuple(r.integers(0, 256, 3))][i % 3]
    img += r.normal(0, 10, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _png_filter(row, prior, bpp, ftype):
    out = bytearray(len(row))
    for i in range(len(row)):
        a = row[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        if ftype == 0:
            p = 0
        elif ftype == 1:
            p = a
        elif ftype == 2:
            p = b
        elif ftype == 3:
            p = (a + b) // 2
        else:
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out[i] = (row[i] - p) & 0xFF
    return bytes([ftype]) + bytes(out)


def _png_pack(a, depth):
    """a: (rows, cols, ch) ints -> list of packed scanlines."""
    rows = []
    for r in a:
        flat = r.reshape(-1)
        if depth == 16:
            rows.append(b"".join(struct.pack(">H", int(v)) for v in flat))
        elif depth == 8:
            rows.append(bytes(int(v) for v in flat))
        else:
            per = 8 // depth
            bs = bytearray()
            for i in range(0, len(flat), per):
                byte = 0
                for j in range(per):
                    v = int(flat[i + j]) if i + j < len(flat) else 0
                    byte |= v << (8 - depth * (j + 1))
                bs.append(byte)
            rows.append(bytes(bs))
    return rows


def write_png(path, a, color_type, depth, palette=None, trns=None, interlace=False):
    """A PNG writer of our own, for what Pillow cannot write (2/4-bit gray,
    16-bit colour, Adam7): every row filter type in turn, two IDAT chunks."""
    if a.ndim == 2:
        a = a[..., None]
    h, w, ch = a.shape
    bpp = max(1, ch * depth // 8)

    def filtered(sub):
        rows = _png_pack(sub, depth)
        prior = bytes(len(rows[0]))
        out = []
        for i, row in enumerate(rows):
            out.append(_png_filter(row, prior, bpp, i % 5))
            prior = row
        return b"".join(out)

    if interlace:
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        raw = b"".join(filtered(a[ys::dy, xs::dx]) for xs, ys, dx, dy in passes
                       if a[ys::dy, xs::dx].size)
    else:
        raw = filtered(a)
    z = zlib.compress(raw, 9)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0,
                                                          1 if interlace else 0))
    if palette is not None:
        data += chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        data += chunk(b"tRNS", trns)
    half = len(z) // 2
    data += chunk(b"IDAT", z[:half]) + chunk(b"IDAT", z[half:]) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def make_sources(out):
    """Small images of every kind the decoders must handle; returns the list
    of (file, note)."""
    made = []

    def save_jpeg(name, im, note, **kw):
        im.save(os.path.join(out, name), "JPEG", **kw)
        made.append((name, note))

    def save_png(name, im, note, **kw):
        im.save(os.path.join(out, name), "PNG", **kw)
        made.append((name, note))

    def own_png(name, a, note, *args, **kw):
        write_png(os.path.join(out, name), a, *args, **kw)
        made.append((name, note))

    save_jpeg("g_odd_420.jpg", Image.fromarray(synth(101, 67, 1)), "101x67 RGB, 4:2:0, q90",
              quality=90, subsampling=2)
    save_jpeg("g_tall_422.jpg", Image.fromarray(synth(33, 150, 2)), "33x150 RGB, 4:2:2, q85",
              quality=85, subsampling=1)
    save_jpeg("g_wide_444.jpg", Image.fromarray(synth(257, 19, 3)), "257x19 RGB, 4:4:4, q95",
              quality=95, subsampling=0)
    save_jpeg("g_progressive.jpg", Image.fromarray(synth(77, 53, 4)), "77x53 progressive, q80",
              quality=80, progressive=True)
    save_jpeg("g_gray.jpg", Image.fromarray(synth(45, 31, 5)).convert("L"), "45x31 grayscale", quality=90)
    cmyk = synth(40, 29, 6)
    k = np.random.default_rng(60).integers(0, 256, (29, 40, 1), dtype=np.uint8)
    save_jpeg("g_cmyk.jpg", Image.fromarray(np.concatenate([cmyk, k], 2), "CMYK"),
              "40x29 CMYK (Adobe, inverted)", quality=92)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW": Pillow's open (and timm) ignore it
    save_jpeg("g_exif_rot.jpg", Image.fromarray(synth(30, 20, 7)), "30x20 with EXIF orientation 6",
              quality=90, exif=exif.tobytes())
    save_jpeg("g_tiny.jpg", Image.fromarray(synth(3, 2, 8)), "3x2 RGB", quality=90)

    save_png("g_tiny.png", Image.fromarray(synth(5, 3, 9)), "5x3 RGB")
    save_png("g_1x1.png", Image.fromarray(synth(1, 1, 10)), "1x1 RGB")
    save_png("g_tall.png", Image.fromarray(synth(23, 151, 11)), "23x151 RGB")
    save_png("g_rgba.png", Image.fromarray(np.concatenate(
        [synth(31, 22, 12), np.random.default_rng(120).integers(0, 256, (22, 31, 1), dtype=np.uint8)], 2),
        "RGBA"), "31x22 RGBA")
    save_png("g_gray_alpha.png", Image.fromarray(np.stack(
        [synth(26, 17, 13)[..., 0], np.random.default_rng(130).integers(0, 256, (17, 26), dtype=np.uint8)],
        2), "LA"), "26x17 gray + alpha")
    save_png("g_gray8.png", Image.fromarray(synth(37, 29, 14)).convert("L"), "37x29 gray 8-bit")
    save_png("g_gray1.png", Image.fromarray(synth(19, 13, 15)).convert("1"), "19x13 gray 1-bit")
    save_png("g_palette.png", Image.fromarray(synth(37, 23, 16)).convert("P", palette=Image.ADAPTIVE,
                                                                            colors=200),
             "37x23 palette 200 colours + tRNS", transparency=3)
    save_png("g_palette4.png", Image.fromarray(synth(21, 14, 17)).convert("P", palette=Image.ADAPTIVE,
                                                                             colors=16),
             "21x14 palette 16 colours, 4-bit", bits=4)
    save_png("g_rgb_trns.png", Image.fromarray(synth(18, 12, 18)), "18x12 RGB with a tRNS colour",
             transparency=(0, 0, 0))

    r = np.random.default_rng(19)
    g = synth(19, 13, 19)[..., 1]
    own_png("g_gray2.png", g >> 6, "19x13 gray 2-bit", 0, 2)
    own_png("g_gray4.png", g >> 4, "19x13 gray 4-bit", 0, 4)
    g16 = (synth(21, 17, 20)[..., 0].astype(np.int64) * 257) ^ r.integers(0, 256, (17, 21))
    g16[0, :8] = [0, 1, 100, 255, 256, 257, 40000, 65535]  # Pillow clips 16-bit gray to 255
    own_png("g_gray16.png", g16, "21x17 gray 16-bit (clipped to 255 by Pillow)", 0, 16)
    own_png("g_rgb16.png", synth(23, 15, 21).astype(np.int64) * 256 + r.integers(0, 256, (15, 23, 3)),
            "23x15 RGB 16-bit", 2, 16)
    rgba16 = np.concatenate([synth(17, 11, 22), synth(17, 11, 23)[..., :1]], 2).astype(np.int64) * 256
    own_png("g_rgba16.png", rgba16 + r.integers(0, 256, rgba16.shape), "17x11 RGBA 16-bit", 6, 16)
    la16 = np.stack([synth(15, 9, 24)[..., 2], synth(15, 9, 25)[..., 0]], 2).astype(np.int64) * 256
    own_png("g_gray_alpha16.png", la16 + 77, "15x9 gray + alpha 16-bit", 4, 16)
    own_png("g_interlaced.png", synth(29, 19, 26), "29x19 RGB, Adam7 interlaced", 2, 8, interlace=True)
    own_png("g_interlaced_gray4.png", synth(13, 11, 27)[..., 0] >> 4, "13x11 gray 4-bit, Adam7", 0, 4,
            interlace=True)
    pal = np.random.default_rng(28).integers(0, 256, (7, 3))
    own_png("g_palette2.png", np.random.default_rng(29).integers(0, 4, (9, 14)), "14x9 palette 2-bit, 7 entries",
            3, 2, palette=pal, trns=bytes([0, 128]))
    return made


def make_bad(out, sources):
    """Damaged files that Pillow refuses; returns [(file, note)]. The C test
    adds truncation sweeps and random damage of its own."""
    bad = []

    def put(name, data, note, pillow_refuses=True):
        """pillow_refuses=False: a broken file Pillow still decodes, which we
        refuse on purpose (kind "stricter" in cases.txt)."""
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        try:
            im = Image.open(io.BytesIO(data))
            im.load()
            im.convert("RGB")
        except Exception as e:  # noqa: BLE001 - any refusal counts
            if not pillow_refuses:
                raise SystemExit(f"Pillow refused {name}, expected it to accept: {e}")
            why = re.sub(r" at 0x[0-9a-f]+", "", f"{type(e).__name__}: {e}")  # no addresses: deterministic
            bad.append(("bad", name, note, why))
            return
        if pillow_refuses:
            raise SystemExit(f"Pillow accepted the bad fixture {name}")
        bad.append(("stricter", name, note, "Pillow decodes it"))

    jpg = open(os.path.join(out, "g_odd_420.jpg"), "rb").read()
    png = open(os.path.join(out, "g_tiny.png"), "rb").read()
    put("bad_truncated.jpg", jpg[: len(jpg) * 2 // 3], "JPEG cut at 2/3")
    put("bad_noeoi.jpg", jpg[:-2], "JPEG without its EOI marker")
    put("bad_truncated.png", png[: len(png) - 30], "PNG cut inside IDAT")
    put("bad_text.jpg", b"this is not an image, only text with a .jpg name\n", "text named .jpg")
    put("bad_empty.png", b"", "empty file")
    put("bad_gif.png", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "a GIF named .png")
    # a SOF0 claiming 60000 x 60000: over the pixel limit (Pillow: DecompressionBombError)
    sof = jpg.index(b"\xff\xc0")
    big = bytearray(jpg)
    big[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
    put("bad_huge.jpg", bytes(big), "JPEG header claiming 60000 x 60000")
    prec = bytearray(jpg)
    prec[sof + 4] = 9
    put("bad_precision.jpg", bytes(prec), "JPEG with 9-bit samples")

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    put("bad_huge.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b""), "PNG header claiming 20000 x 20000")
    crc = bytearray(png)
    crc[29] ^= 0xFF  # the IHDR CRC
    put("bad_crc.png", bytes(crc), "PNG whose IHDR fails its CRC")
    ihdr = struct.pack(">IIBBBBB", 4, 4, 8, 3, 0, 0, 0)
    put("bad_noplte.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 20))
        + chunk(b"IEND", b""), "palette PNG without PLTE",
        pillow_refuses=False)
    # intact pixel data under a wrong IDAT CRC: Pillow never checks IDAT CRCs, libpng does
    idat = png.index(b"IDAT")
    (n,) = struct.unpack(">I", png[idat - 4:idat])
    dam = bytearray(png)
    dam[idat + 4 + n] ^= 0x55
    put("bad_idat_crc.png", bytes(dam), "PNG whose IDAT fails its CRC", pillow_refuses=False)
    dam = bytearray(png)
    dam[idat + 8] ^= 0x55
    put("bad_deflate.png", bytes(dam), "PNG with damaged deflate data")
    put("bad_zlib.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", b"\x78\x9c\xff\xff\xff\xff garbage") + chunk(b"IEND", b""),
        "PNG whose IDAT is not zlib data")
    return bad


# ------------------------------------------------------------------- cases ---

def timm_eval(im, size, crop_pct, interp, mean=MEAN, std=STD):
    """timm's own eval transform; returns (uint8 crop HWC, float CHW)."""
    t = create_transform(size, is_training=False, crop_pct=crop_pct, interpolation=interp, mean=mean, std=std)
    tl = t.transforms
    assert isinstance(tl[0], torchvision.transforms.Resize), tl
    assert isinstance(tl[1], torchvision.transforms.CenterCrop), tl
    crop = tl[1](tl[0](im))
    x = t(im)
    u8 = np.array(crop)
    assert u8.shape == (size, size, 3), u8.shape
    # the float output is the uint8 crop through ToTensor + Normalize
    ref = (torch.from_numpy(u8).permute(2, 0, 1).float().div(255) - torch.tensor(mean).view(3, 1, 1)) \
        / torch.tensor(std).view(3, 1, 1)
    assert torch.equal(ref, x)
    return u8, x.numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", default="/tmp/sklearn_photos/usr/lib/python3/dist-packages/sklearn/datasets/images",
                    help="folder holding sklearn's china.jpg and flower.jpg")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    for f in os.listdir(out) if os.path.isdir(out) else []:
        if f != "README.md":
            os.remove(os.path.join(out, f))
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # Pillow's note on palette transparency

    for p in ("china.jpg", "flower.jpg"):
        shutil.copyfile(os.path.join(args.photos, p), os.path.join(out, p))
    sources = make_sources(out)
    bad = make_bad(out, sources)

    tensors, lines = [], []

    def rgb(name):
        return Image.open(os.path.join(out, name)).convert("RGB")

    def add(kind, fields, name, arr):
        tname = f"{kind}{len(tensors)}"
        if arr.dtype == np.uint8:
            a = np.ascontiguousarray(arr)
            tensors.append((tname, ("U8", list(a.shape), a.tobytes())))
        else:
            tensors.append((tname, np.ascontiguousarray(arr, dtype=np.float32)))
        lines.append("\t".join([kind, name] + [str(f) for f in fields] + [tname]))

    # decodes: photos as three rows plus a hash of all pixels, small ones whole
    for name in ["china.jpg", "flower.jpg"] + [s for s, _ in sources]:
        a = np.array(rgb(name))
        h, w = a.shape[:2]
        if w * h > 64 * 1024:
            rows = [0, h // 2, h - 1]
            add("decode", [w, h, f"{fnv1a64_np(a):016x}", ",".join(map(str, rows))], name, a[rows])
        else:
            add("decode", [w, h, f"{fnv1a64_np(a):016x}", "all"], name, a)

    # timm's eval transform on the photos: the MambaOut cfg, test_input_size,
    # other crops, an odd size, a 10x upscale, crop_pct > 1 (zero padding)
    photo_evals = [
        ("china.jpg", 224, 1.0, "bicubic"), ("flower.jpg", 288, 1.0, "bicubic"),
        ("china.jpg", 224, 0.875, "bilinear"), ("flower.jpg", 160, 0.95, "bicubic"),
        ("china.jpg", 97, 0.9, "bicubic"), ("flower.jpg", 64, 0.1, "bicubic"),
        ("flower.jpg", 50, 1.25, "bicubic"), ("china.jpg", 33, 0.7, "bilinear"),
    ]
    small_evals = [
        ("g_odd_420.jpg", 48, 0.875, "bicubic"), ("g_odd_420.jpg", 67, 1.0, "bilinear"),
        ("g_tall_422.jpg", 32, 1.0, "bicubic"), ("g_wide_444.jpg", 24, 0.9, "bilinear"),
        ("g_wide_444.jpg", 19, 1.0, "bicubic"), ("g_progressive.jpg", 40, 0.875, "bicubic"),
        ("g_gray.jpg", 28, 1.0, "bicubic"), ("g_cmyk.jpg", 24, 0.95, "bicubic"),
        ("g_tiny.png", 24, 1.0, "bicubic"), ("g_tiny.png", 16, 0.875, "bilinear"),
        ("g_1x1.png", 8, 1.0, "bicubic"), ("g_tall.png", 23, 1.0, "bicubic"),
        ("g_tall.png", 20, 0.875, "bicubic"), ("g_tiny.jpg", 7, 0.8, "bicubic"),
        ("g_palette.png", 30, 1.0, "bicubic"), ("g_rgb16.png", 15, 1.3, "bilinear"),
    ]
    for name, r, cp, interp in photo_evals + small_evals:
        u8, _ = timm_eval(rgb(name), r, cp, interp)
        add("eval", [r, repr(cp), interp], name, u8)

    # the float tensor itself, with the ImageNet and with other statistics
    for name, r, cp, interp, mean, std in [
        ("china.jpg", 64, 1.0, "bicubic", MEAN, STD),
        ("flower.jpg", 32, 0.875, "bilinear", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ("g_odd_420.jpg", 40, 0.9, "bicubic", (0.1, 0.7, 0.33), (0.3, 0.05, 1.7)),
    ]:
        _, x = timm_eval(rgb(name), r, cp, interp, mean, std)
        add("norm", [r, repr(cp), interp] + [repr(v) for v in mean + std], name, x)

    # PIL resizes alone: one pass only (width or height unchanged), both,
    # shrinking and growing, unchanged
    for name, w, h, interp in [
        ("g_odd_420.jpg", 101, 30, "bicubic"), ("g_odd_420.jpg", 37, 67, "bicubic"),
        ("g_odd_420.jpg", 203, 131, "bicubic"), ("g_odd_420.jpg", 50, 90, "bilinear"),
        ("g_odd_420.jpg", 101, 67, "bicubic"), ("g_tall.png", 23, 40, "bilinear"),
        ("g_tall.png", 9, 151, "bicubic"), ("g_1x1.png", 5, 3, "bicubic"),
        ("g_wide_444.jpg", 64, 5, "bicubic"),
    ]:
        flt = Image.BICUBIC if interp == "bicubic" else Image.BILINEAR
        add("resize", [w, h, interp], name, np.array(rgb(name).resize((w, h), flt)))

    meta = {"pillow_version": PIL.__version__, "torch_version": torch.__version__,
            "torchvision_version": torchvision.__version__, "timm_version": timm.__version__,
            "libjpeg": str(features.version("jpg")), "zlib": str(features.version("zlib"))}
    write_safetensors(os.path.join(out, "expected.safetensors"), tensors, meta)
    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.write("# Written by scripts/make_image_fixtures.py; tab-separated; see README.md.\n")
        f.write("# " + ", ".join(f"{k} {v}" for k, v in meta.items()) + "\n")
        for line in lines:
            f.write(line + "\n")
        for kind, name, note, why in bad:
            f.write("\t".join([kind, name, note, why.replace("\t", " ").replace("\n", " ")]) + "\n")

    # where Pillow starts to accept a cut file: every shorter cut it refuses
    cut_lines = []
    for name in CUT_FILES:
        data = open(os.path.join(out, name), "rb").read()
        full = np.array(rgb(name))
        ok = []
        for n in range(len(data)):
            try:
                im = Image.open(io.BytesIO(data[:n]))
                im.load()
                a = np.array(im.convert("RGB"))
            except Exception:  # noqa: BLE001
                continue
            assert np.array_equal(a, full), f"{name} cut to {n}: Pillow decodes other pixels"
            ok.append(n)
        first = ok[0] if ok else len(data)
        assert ok == list(range(first, len(data))), f"{name}: Pillow's accepted cuts are not one suffix"
        cut_lines.append(f"cut\t{name}\t{len(data)}\t{first}")
    with open(os.path.join(out, "cases.txt"), "a") as f:
        for line in cut_lines:
            f.write(line + "\n")

    write_folder_order(out)
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"wrote {len(tensors)} tensors, {len(bad)} bad files, {total} bytes in {out}")


def write_folder_order(out):
    """A tree of awkward names, ordered by timm itself."""
    tree = {
        "n01440764": ["img10.jpg", "img9.JPG", "IMG1.png", "img1.jpeg", "notes.txt"],
        "n01443537": ["x.JpEg", ".hidden.jpg", ".jpg", "007.jpg", "7b.jpg", "a.jpg.txt", "zz.PNG"],
        "cat": ["b.jpg", "a.png", "Thumbs.db"],
        "cat2": ["a.jpg"],
        "cat10": ["c 1.jpg", "c 01b.jpg", "c10.jpg", "c2.jpg"],
        "Dog": ["z.jpg", "y.gif"],
        "apple": ["0.png", "00x.png", "1.png"],
        "b10": ["a.jpg"], "b9": ["a.jpg"], "B1": ["q.jpeg", "Q2.jpeg"],
        "x_1": ["..jpg", "a..jpg"],
    }
    tmp = tempfile.mkdtemp()
    try:
        root = os.path.join(tmp, "val")
        for c, files in tree.items():
            os.makedirs(os.path.join(root, c))
            for f in files:
                open(os.path.join(root, c, f), "wb").close()
        open(os.path.join(root, "README.txt"), "wb").close()  # not an image: ignored
        samples, class_to_idx = find_images_and_targets(root)
        with open(os.path.join(out, "folder_order.txt"), "w") as f:
            f.write("# timm %s find_images_and_targets on the tree below; tab-separated.\n" % timm.__version__)
            f.write("# file <relative path>: created (empty); class <index> <name>; image <label> <relative path>\n")
            f.write("file\tREADME.txt\n")
            for c, files in tree.items():
                for name in files:
                    f.write(f"file\t{c}/{name}\n")
            for c, i in sorted(class_to_idx.items(), key=lambda kv: kv[1]):
                f.write(f"class\t{i}\t{c}\n")
            for path, label in samples:
                f.write(f"image\t{label}\t{os.path.relpath(path, root)}\n")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
