#!/usr/bin/env python3
"""Golden evaluation of an image folder by timm itself (tests/fixtures/eval).

A small image folder is laid out from the committed image fixtures (the
layout file says which image goes in which class folder; class names are
chosen so that timm's natural-key order differs from plain sorting). timm's
own pieces evaluate it as validate.py does:

  - timm.data.ImageDataset(root) lists it (timm's ImageFolder reader and order);
  - timm.data.create_transform(R, is_training=False, crop_pct, interpolation,
    mean, std) preprocesses each image (Pillow decode + torchvision);
  - MambaOut(depths=(1,1,2,1), dims=(16,24,32,48)) with the weights of
    tests/fixtures/mambaout_test_weights.safetensors (timm's names) runs in
    float32 eval mode;
  - loss = nn.CrossEntropyLoss() over the batch, top-1 / top-5 by
    timm.utils.accuracy, as validate.py reports them.

Writes tests/fixtures/eval/layout.txt (class folder, image file), expected.txt
(key value lines: images, top1, top5 as counts, loss, the class order and each
image's label and predicted class) and inputs.safetensors (timm's transformed
tensor of every image [N,3,R,R] float32, and the labels as float32).

    bash scripts/setup_fixture_env.sh
    PYTHONPATH=/opt/timm /usr/bin/python3 scripts/make_eval_fixtures.py
"""
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

import timm
from timm.data import ImageDataset, create_transform
from timm.models.mambaout import MambaOut
from timm.utils import accuracy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
IMAGES = os.path.join(ROOT, "tests", "fixtures", "images")
OUT = os.path.join(ROOT, "tests", "fixtures", "eval")
WEIGHTS = os.path.join(ROOT, "tests", "fixtures", "mambaout_test_weights.safetensors")

RES, CROP_PCT, INTERP = 64, 1.0, "bicubic"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# class folder -> images; "c10" sorts after "c9" by natural key, before it by bytes
LAYOUT = [
    ("c9", "china.jpg"),
    ("c9", "g_rgba.png"),
    ("c10", "flower.jpg"),
    ("c10", "g_gray.jpg"),
    ("c10", "g_palette.png"),
    ("Ant", "g_odd_420.jpg"),
    ("Ant", "g_tall_422.jpg"),
]


def main():
    assert timm.__version__ == "1.0.31", timm.__version__
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp()
    try:
        for cls, f in LAYOUT:
            os.makedirs(os.path.join(tmp, cls), exist_ok=True)
            shutil.copy(os.path.join(IMAGES, f), os.path.join(tmp, cls, f))
        tf = create_transform(RES, is_training=False, crop_pct=CROP_PCT, interpolation=INTERP, mean=MEAN, std=STD)
        ds = ImageDataset(tmp, transform=tf)
        xs, ys, names = [], [], []
        for i in range(len(ds)):
            x, y = ds[i]
            xs.append(x)
            ys.append(int(y))
            names.append(os.path.relpath(ds.filename(i, absolute=True), tmp))
        classes = sorted(ds.reader.class_to_idx, key=ds.reader.class_to_idx.get)
    finally:
        shutil.rmtree(tmp)
    x = torch.stack(xs)
    y = torch.tensor(ys)

    weights = read_safetensors(WEIGHTS)[0]
    model = MambaOut(depths=(1, 1, 2, 1), dims=(16, 24, 32, 48), num_classes=1000)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = torch.nn.CrossEntropyLoss()(logits, y)
        top1, top5 = accuracy(logits, y, topk=(1, 5))
    n = len(ys)
    with open(os.path.join(OUT, "layout.txt"), "w") as fp:
        for cls, f in LAYOUT:
            fp.write(f"{cls} {f}\n")
    with open(os.path.join(OUT, "expected.txt"), "w") as fp:
        fp.write(f"# timm {timm.__version__}, torch {torch.__version__}; res {RES} crop_pct {CROP_PCT} {INTERP}\n")
        fp.write(f"images {n}\n")
        fp.write(f"top1 {round(float(top1) * n / 100)}\n")
        fp.write(f"top5 {round(float(top5) * n / 100)}\n")
        fp.write(f"loss {float(loss):.9g}\n")
        fp.write("classes " + " ".join(classes) + "\n")
        for name, label, row in zip(names, ys, logits):
            fp.write(f"image {name} {label} {int(row.argmax())}\n")
    write_safetensors(os.path.join(OUT, "inputs.safetensors"),
                      [("input", x.numpy().astype("<f4")), ("labels", y.numpy().astype("<f4"))],
                      {"timm": timm.__version__, "torch": torch.__version__, "res": str(RES),
                       "crop_pct": str(CROP_PCT), "interpolation": INTERP})
    print(open(os.path.join(OUT, "expected.txt")).read())


if __name__ == "__main__":
    main()
