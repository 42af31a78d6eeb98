#!/bin/sh
# The paper's transfer on real image files, with no download: Fashion-MNIST
# items (Debian's dataset-fashion-mnist) exported by `robusta data --export`
# as an image folder, train split as PNG and test split as JPEG; then
# `transfer --transform paper` from a small standard and a small robust
# (PGD-L2) source trained on the other five classes. Checks: the export
# reads back as folder: with its classes and counts, both transfers reach
# accuracies well above chance (0.2), the first epoch decodes every image
# once and the second none (decoded images kept), and a second run on the
# same --cache folder decodes nothing at all. A visible SKIP without
# Fashion-MNIST (RB_FASHION_MNIST_DIR overrides its folder).
set -u
fm=${RB_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
if [ ! -e "$fm/train-images-idx3-ubyte" ] && [ ! -e "$fm/train-images-idx3-ubyte.gz" ]; then
  echo "SKIP: no Fashion-MNIST in $fm (apt install dataset-fashion-mnist, or set RB_FASHION_MNIST_DIR)"
  exit 77
fi
: "${RB_TEST_ROBUSTA:?run through make check}"
robusta() { "$RB_TEST_ROBUSTA" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/robusta-real-images-XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
data="fashion-mnist:$fm"

# the target: classes 0-4, 60 training and 40 test items each
robusta -q data --data "$data" --classes 0-4 --per-class 60 --split train --export "$work/items" >/dev/null ||
  fail "export train"
robusta -q data --data "$data" --classes 0-4 --per-class 40 --split test --export "$work/items" --format jpeg \
  --quality 90 >/dev/null || fail "export test"
[ "$(find "$work/items/train/0-T-shirt_top" -name '*.png' | wc -l)" -eq 60 ] ||
  fail "not 60 PNGs where the layout puts class 0: $(ls "$work/items/train")"
[ "$(find "$work/items/test" -name '*.jpg' | wc -l)" -eq 200 ] || fail "not 200 JPEGs in the test folder"
summary=$(robusta data --data "folder:$work/items" --transform paper --image-size 32) || fail "data: $summary"
echo "$summary" | grep -q "train: 300 examples, 5 classes, RGB images of 28-28 x 28-28 pixels" ||
  fail "the export does not read back: $summary"
echo "$summary" | grep -q "classes: 0-T-shirt_top 60, 1-Trouser 60, 2-Pullover 60, 3-Dress 60, 4-Coat 60" ||
  fail "classes or counts differ: $summary"

# the sources: classes 5-9 at 32 x 32 in RGB, standard and robust
common="--arch resnet18 --stem cifar --width 0.25 --data $data --classes 5-9 --per-class 300 --image-size 32
  --channels 3 --epochs 3 --eval-every 3 --batch-size 64 --lr 0.05 --threads 2"
# shellcheck disable=SC2086
robusta -q train $common --out "$work/standard" || fail "standard source"
# shellcheck disable=SC2086
robusta -q train $common --attack pgd-l2 --eps 0.25 --step-size 0.1 --steps 2 --out "$work/robust" ||
  fail "robust source"

mkdir "$work/cache"
accuracy() { sed -n 's/.*"accuracy": *\([0-9.e+-]*\).*/\1/p' "$1/metrics.json" | head -n 1; }
decoded() { sed -n "$2p" "$1/log.jsonl" | sed -n 's/.*"images_decoded": *\([0-9]*\).*/\1/p'; }
for source in standard robust; do
  out="$work/transfer-$source"
  robusta -q transfer --source "$work/$source/model.rbt" --data "folder:$work/items" --transform paper \
    --image-size 32 --cache "$work/cache" --epochs 10 --batch-size 30 --lr 0.05 --threads 2 --loader-threads 2 \
    --out "$out" || fail "transfer from the $source source"
  acc=$(accuracy "$out")
  echo "transfer from the $source source: test accuracy $acc; images decoded in epochs 1 and 2:" \
    "$(decoded "$out" 1), $(decoded "$out" 2)"
  # five classes: chance is 0.2; features of other Fashion-MNIST classes do far better
  awk -v a="$acc" 'BEGIN { exit !(a >= 0.4 && a <= 1) }' || fail "$source: accuracy $acc is not in [0.4, 1]"
  [ "$(decoded "$out" 2)" = 0 ] || fail "$source: epoch 2 decoded $(decoded "$out" 2) images, not 0"
  if [ "$source" = standard ]; then
    # 300 training and 200 test images, each decoded once
    [ "$(decoded "$out" 1)" = 500 ] || fail "epoch 1 decoded $(decoded "$out" 1) images, not 500"
  else
    # the cache folder holds them from the first run
    [ "$(decoded "$out" 1)" = 0 ] || fail "the second run decoded $(decoded "$out" 1) images, not 0"
  fi
done
[ "$(ls "$work/cache" | wc -l)" -eq 2 ] || fail "the cache folder holds $(ls "$work/cache"), not one file per split"
echo "PASS: real images through --transform paper, decoded once, cached across runs"
