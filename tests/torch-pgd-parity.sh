#!/bin/sh
# PGD parity with PyTorch (tests/torch_pgd_parity.py): robusta attack's
# pgd-l2 and pgd-linf on an imported torchvision resnet18 against a plain
# PyTorch implementation of the same update. A visible SKIP when Debian's
# python3-torch and python3-torchvision are not installed
# (scripts/install-deps --torch installs them).
set -u
python=/usr/bin/python3
if ! "$python" -c 'import torch, torchvision, numpy' >/dev/null 2>&1; then
  echo "SKIP: PyTorch PGD parity needs $python with torch, torchvision and numpy (scripts/install-deps --torch)"
  exit 77
fi
: "${RB_TEST_ROBUSTA:?run through make check}"
work=$(mktemp -d "${TMPDIR:-/tmp}/robusta-pgd-parity-XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
srcdir=${srcdir:-$(dirname "$0")/..}
"$python" "$srcdir/tests/torch_pgd_parity.py" "$RB_TEST_ROBUSTA" "$work"
