#!/bin/sh
# PyTorch parity of the detect task's FCOS loss against torchvision's
# FCOS.compute_loss (tests/torch_detect_parity.py through
# tests/detect_parity); a visible SKIP when Debian's python3-torch and
# python3-torchvision are not installed (scripts/install-deps --torch).
set -u
python=/usr/bin/python3
if ! "$python" -c 'import torch, torchvision, numpy' >/dev/null 2>&1; then
  echo "SKIP: PyTorch detection parity needs $python with torch, torchvision and numpy (scripts/install-deps --torch)"
  exit 77
fi
: "${RB_TEST_DETECT_PARITY:?run through make check}"
work=$(mktemp -d "${TMPDIR:-/tmp}/robusta-detect-parity-XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
srcdir=${srcdir:-$(dirname "$0")/..}
"$python" "$srcdir/tests/torch_detect_parity.py" "$RB_TEST_DETECT_PARITY" "$work"
