#!/bin/sh
# PyTorch parity of group normalization and of a tower applied twice with
# shared parameters (tests/torch_shared_parity.py through
# tests/shared_parity); a visible SKIP when Debian's python3-torch is not
# installed (scripts/install-deps --torch).
set -u
python=/usr/bin/python3
if ! "$python" -c 'import torch, numpy' >/dev/null 2>&1; then
  echo "SKIP: PyTorch shared-layer parity needs $python with torch and numpy (scripts/install-deps --torch)"
  exit 77
fi
: "${RB_TEST_SHARED_PARITY:?run through make check}"
work=$(mktemp -d "${TMPDIR:-/tmp}/robusta-shared-parity-XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
srcdir=${srcdir:-$(dirname "$0")/..}
"$python" "$srcdir/tests/torch_shared_parity.py" "$RB_TEST_SHARED_PARITY" "$work"
