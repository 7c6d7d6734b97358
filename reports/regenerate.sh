#!/usr/bin/env bash
# Regenerates every report committed in this folder; each one is the output of the command
# beside it, never edited by hand. Run from the repository root: bash reports/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# The README's main job. Five sizes, all multiples of 32 (every feature map even), from 64 (at 32 the
# last two maps are 2x2 and 1x1, all border): the finite-size fit needs five, and 320 draws settle it.
verify scaling --arch strided-cnn --dims 64,96,128,192,256 --draws 320
verify scaling --arch strided-cnn --dims 32,64,128,256 --padding circular --out-dir reports/circular
verify scaling --arch dense --dims 64,256,1024,4096
verify paths --arch strided-cnn --dims 32,64,128,256
verify pooling --arch avgpool-cnn --pools 1,2,4,8 --dims 128
verify lemma9 --arch random-dag --dims 6
verify lemma9 --arch random-dag --dims 6 --init shared
verify first-order --arch dense --dims 256,1024,4096 --eps 1e-4,1e-3,1e-2,1e-1
verify compare --archs strided-cnn,avgpool-cnn,resnet,paper-net,vit --dims 32,64,128
verify compare --archs strided-cnn:padding=circular,avgpool-cnn:padding=circular,resnet:padding=circular,resnet:padding=circular:head=flatten,resnet:padding=circular:head=flatten:add-relu=off,resnet:bn=on,paper-net:bn=off,paper-net:bn=off:pool=avg --dims 32,64,128 --out-dir reports/compare-variants
verify compare --archs vit,vit:patch=4,vit:grid=4,vit:grid=8 --dims 32,64,128 --draws 64 --batch 1 --out-dir reports/compare-vit
verify trained --arch paper-net --data fashion-mnist --dims 28,56,112 --seeds 3       # quick profile, ~10 min
verify calibrate                                                             # ~10 minutes of CPU on 2 cores
verify flip-distance --arch dense --dims 64,256,1024,4096,16384 --draws 100 --batch 8
