// Launchers of the hash-grid CUDA kernels (hashgrid_cuda.cu), called by hashgrid.cpp.
// Plain C++: raw device pointers and an opaque cudaStream_t, no torch and no CUDA headers.
// Each returns nullptr on success, else the CUDA error string of the failed launch.
#pragma once

#include <cstdint>

#include "pav/hashgrid.h"

namespace pav {
namespace hashgrid {

// out [n_points, levels.count * n_features] = the encoding of points [n_points, 3].
template <typename T>
const char* launch_forward(const T* points, const T* table, int64_t n_points, int n_features, const Levels& levels,
                           T* out, void* stream);

// grad_table [n_params, n_features] += the table gradient and grad_points [n_points, 3] += the point gradient,
// each skipped where its pointer is null; the caller zeroes them.
template <typename T>
const char* launch_backward(const T* grad_out, const T* points, const T* table, int64_t n_points, int n_features,
                            const Levels& levels, T* grad_table, T* grad_points, void* stream);

}  // namespace hashgrid
}  // namespace pav
