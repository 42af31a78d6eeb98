#!/bin/sh
# Pillow and torchvision parity of the paper's image pipeline and of the
# image decoder (tests/pil_transform_parity.py through
# tests/pil_transform_parity); a visible SKIP when Debian's python3-pil,
# python3-torchvision and python3-numpy are not installed
# (scripts/install-deps --torch).
set -u
python=/usr/bin/python3
if ! "$python" -c 'import PIL, torchvision, numpy' >/dev/null 2>&1; then
  echo "SKIP: Pillow parity needs $python with PIL, torchvision and numpy (scripts/install-deps --torch)"
  exit 77
fi
: "${RB_TEST_PIL_TRANSFORM_PARITY:?run through make check}"
work=$(mktemp -d "${TMPDIR:-/tmp}/robusta-pil-parity-XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
srcdir=${srcdir:-$(dirname "$0")/..}
"$python" "$srcdir/tests/pil_transform_parity.py" "$RB_TEST_PIL_TRANSFORM_PARITY" "$work"
