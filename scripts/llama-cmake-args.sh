#!/usr/bin/env sh
# CMAKE_ARGS for building llama-cpp-python from source on this CPU.
#
# Why not GGML_NATIVE: -march=native also enables AMX where the CPU reports it, and ggml's AMX
# matmul segfaults on the virtualised Sapphire Rapids machines we run on
# (ggml_backend_amx_mul_mat). So we name the x86 extensions explicitly, from /proc/cpuinfo,
# and leave AMX off. Elsewhere (ARM, macOS) we let ggml pick its defaults.
set -eu
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { case " $flags " in *" $1 "*) return 0 ;; esac; return 1; }
if [ -z "$flags" ] || ! has avx2; then
  echo "${CMAKE_ARGS:-}"
  exit 0
fi
args="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
args="$args -DGGML_AVX=ON -DGGML_AVX2=ON"
has fma && args="$args -DGGML_FMA=ON"
has f16c && args="$args -DGGML_F16C=ON"
has bmi2 && args="$args -DGGML_BMI2=ON"
has avx_vnni && args="$args -DGGML_AVX_VNNI=ON"
if has avx512f && has avx512bw && has avx512vl && has avx512dq && has avx512cd; then
  args="$args -DGGML_AVX512=ON"
  has avx512vbmi && args="$args -DGGML_AVX512_VBMI=ON"
  has avx512_vnni && args="$args -DGGML_AVX512_VNNI=ON"
  has avx512_bf16 && args="$args -DGGML_AVX512_BF16=ON"
fi
echo "$args ${CMAKE_ARGS:-}"
