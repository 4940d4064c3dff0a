#!/usr/bin/env bash
# Compiles crates/tensorrt-sys/shim/shim.cpp alone against one set of
# TensorRT headers, the way build.rs does, and fails on any warning. Run it
# against every TensorRT we ship for (8.5/8.6 and 10.x) before changing the
# shim: a build only ever sees the headers of the box it targets.
#
# Usage: scripts/check-tensorrt-shim.sh TENSORRT_INCLUDE_DIR [CUDA_INCLUDE_DIR]
#   CUDA_INCLUDE_DIR defaults to /usr/local/cuda/include.
#   CXX picks the compiler (default g++); CXX=clang++ checks with clang.
#
# TensorRT and CUDA come in with -isystem, not -I: their own headers trip
# -Wdeprecated-declarations and -Wunused-parameter, and -Werror is meant for
# our code only. Deprecated API that the shim itself calls still warns.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 TENSORRT_INCLUDE_DIR [CUDA_INCLUDE_DIR]" >&2
    exit 2
fi
tensorrt=$1
cuda=${2:-/usr/local/cuda/include}
cxx=${CXX:-g++}
shim=$(cd "$(dirname "$0")/.." && pwd)/crates/tensorrt-sys/shim/shim.cpp

for header in "$tensorrt/NvInferVersion.h" "$tensorrt/NvOnnxParser.h" "$cuda/cuda_runtime_api.h"; do
    if [[ ! -f $header ]]; then
        echo "$0: missing $header" >&2
        exit 2
    fi
done

version=$(awk '$1 == "#define" && $2 ~ /^NV_TENSORRT_(MAJOR|MINOR|PATCH)$/ { print $3 }' \
    "$tensorrt/NvInferVersion.h" | paste -sd.)
echo "checking shim.cpp with $cxx against TensorRT $version headers in $tensorrt"

# -fsyntax-only skips code generation but still emits every warning.
"$cxx" -std=c++17 -Wall -Wextra -Werror -fsyntax-only \
    -isystem "$tensorrt" -isystem "$cuda" "$shim"
echo "TensorRT $version: no warnings"
