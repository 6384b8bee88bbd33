// CUDA kernels of the hash-grid encoding: one thread per (point, level), levels along blockIdx.y so a
// block reads one level's table. The math is pav/hashgrid.h, shared with the CPU path.
#include <cuda_runtime.h>

#include "hashgrid_launch.h"
#include "pav/hashgrid.h"

namespace pav {
namespace hashgrid {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float atomic_add(float* dst, float value) { return atomicAdd(dst, value); }

__device__ __forceinline__ double atomic_add(double* dst, double value) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 600
    return atomicAdd(dst, value);
#else
    // No native double atomicAdd before sm_60: compare-and-swap on the bit pattern.
    unsigned long long* bits = reinterpret_cast<unsigned long long*>(dst);
    unsigned long long seen = *bits, expected;
    do {
        expected = seen;
        seen = atomicCAS(bits, expected, __double_as_longlong(value + __longlong_as_double(expected)));
    } while (seen != expected);
    return __longlong_as_double(seen);
#endif
}

struct AtomicAdd {
    template <typename T>
    __device__ __forceinline__ void operator()(T* dst, T value) const {
        atomic_add(dst, value);
    }
};

template <typename T>
__global__ void forward_kernel(const T* __restrict__ points, const T* __restrict__ table, int64_t n_points,
                               int n_features, Levels levels, T* __restrict__ out) {
    const int64_t point = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int level = blockIdx.y;
    if (point >= n_points) return;
    const Sample<T> sample = sample_level(points + point * 3, levels.level[level]);
    interpolate(sample, table, n_features, out + (point * levels.count + level) * n_features);
}

template <typename T>
__global__ void backward_kernel(const T* __restrict__ grad_out, const T* __restrict__ points,
                                const T* __restrict__ table, int64_t n_points, int n_features, Levels levels,
                                T* __restrict__ grad_table, T* __restrict__ grad_points) {
    const int64_t point = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int level = blockIdx.y;
    if (point >= n_points) return;
    const Sample<T> sample = sample_level(points + point * 3, levels.level[level]);
    const T* grad_level = grad_out + (point * levels.count + level) * n_features;
    if (grad_table != nullptr) scatter_to_table(sample, grad_level, n_features, grad_table, AtomicAdd());
    if (grad_points != nullptr) {
        T grad_point[3];
        point_gradient(sample, table, grad_level, n_features, grad_point);
        for (int axis = 0; axis < 3; ++axis) atomic_add(grad_points + point * 3 + axis, grad_point[axis]);
    }
}

dim3 grid_for(int64_t n_points, int n_levels) {
    return dim3(static_cast<unsigned int>((n_points + kThreads - 1) / kThreads), static_cast<unsigned int>(n_levels));
}

const char* last_error() {
    const cudaError_t status = cudaGetLastError();
    return status == cudaSuccess ? nullptr : cudaGetErrorString(status);
}

}  // namespace

template <typename T>
const char* launch_forward(const T* points, const T* table, int64_t n_points, int n_features, const Levels& levels,
                           T* out, void* stream) {
    if (n_points == 0) return nullptr;
    forward_kernel<T><<<grid_for(n_points, levels.count), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        points, table, n_points, n_features, levels, out);
    return last_error();
}

template <typename T>
const char* launch_backward(const T* grad_out, const T* points, const T* table, int64_t n_points, int n_features,
                            const Levels& levels, T* grad_table, T* grad_points, void* stream) {
    if (n_points == 0) return nullptr;
    backward_kernel<T><<<grid_for(n_points, levels.count), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        grad_out, points, table, n_points, n_features, levels, grad_table, grad_points);
    return last_error();
}

template const char* launch_forward<float>(const float*, const float*, int64_t, int, const Levels&, float*, void*);
template const char* launch_forward<double>(const double*, const double*, int64_t, int, const Levels&, double*,
                                            void*);
template const char* launch_backward<float>(const float*, const float*, const float*, int64_t, int, const Levels&,
                                            float*, float*, void*);
template const char* launch_backward<double>(const double*, const double*, const double*, int64_t, int,
                                             const Levels&, double*, double*, void*);

}  // namespace hashgrid
}  // namespace pav
