#!/usr/bin/env bash
# The two photos of the image fixtures (scripts/make_image_fixtures.py):
# china.jpg and flower.jpg, which Debian's python3-sklearn ships in
# sklearn/datasets/images (CC BY 2.0, see tests/fixtures/images/README.md).
# Downloads the .deb and unpacks it under /tmp; installs nothing.
set -euo pipefail
dest="${1:-/tmp/sklearn_photos}"
mkdir -p "$dest"
cd "$dest"
if ! ls python3-sklearn_*.deb >/dev/null 2>&1; then
    apt-get download python3-sklearn
fi
dpkg-deb -x python3-sklearn_*.deb "$dest"
ls -l "$dest/usr/lib/python3/dist-packages/sklearn/datasets/images/"
