// Hash-grid encoding: torch entry points, input checks, the CPU path (OpenMP) and the dispatch to the
// CUDA launchers. The per-point math is pav/hashgrid.h, shared with the kernels.
//
// CPU layout of the work (each level's table is a few MB and stays in cache while it is used):
//   forward:  level by level, points split across threads;
//   backward: levels split across threads for the table gradient, each level owning its slice of the table
//             (no atomics); then, only when asked for, the point gradient level by level with points split
//             across threads, each point's gradient owned by one thread (no races, no partial buffers).
#include <torch/extension.h>

#include <algorithm>
#include <tuple>
#include <type_traits>
#include <vector>

#include "hashgrid_launch.h"
#include "pav/hashgrid.h"
#include "threads.h"

#ifdef PAV_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace pav {
namespace hashgrid {
namespace {

constexpr int64_t kSerialWork = int64_t(1) << 12;  // below this many (point, level) pairs, one thread

// Checks the level description against the table and builds the Levels the math uses.
Levels make_levels(const std::vector<int64_t>& resolutions, const std::vector<int64_t>& offsets,
                   int64_t log2_hashmap_size) {
    const int64_t n_levels = static_cast<int64_t>(resolutions.size());
    TORCH_CHECK_VALUE(n_levels >= 1 && n_levels <= kMaxLevels, "hash_encode: expected 1 to ", kMaxLevels,
                      " levels, got ", n_levels);
    TORCH_CHECK_VALUE(log2_hashmap_size >= 1 && log2_hashmap_size <= kMaxLog2HashmapSize,
                      "hash_encode: log2_hashmap_size must be in [1, ", kMaxLog2HashmapSize, "], got ",
                      log2_hashmap_size);
    TORCH_CHECK_VALUE(static_cast<int64_t>(offsets.size()) == n_levels + 1, "hash_encode: expected ", n_levels + 1,
                      " level offsets (one per level and the total row count), got ", offsets.size());
    TORCH_CHECK_VALUE(offsets[0] == 0, "hash_encode: the first level offset must be 0, got ", offsets[0]);
    Levels levels;
    levels.count = static_cast<int>(n_levels);
    const int log2 = static_cast<int>(log2_hashmap_size);
    for (int64_t l = 0; l < n_levels; ++l) {
        const int64_t resolution = resolutions[l];
        TORCH_CHECK_VALUE(resolution >= 1 && resolution <= (int64_t(1) << 24), "hash_encode: level ", l,
                          " resolution must be in [1, 2^24], got ", resolution);
        const int64_t rows = level_rows(resolution, log2);
        TORCH_CHECK_VALUE(offsets[l + 1] - offsets[l] == rows, "hash_encode: level ", l, " (resolution ",
                          resolution, ") must span ", rows, " rows, but its offsets span ",
                          offsets[l + 1] - offsets[l]);
        levels.level[l] = make_level(resolution, offsets[l], log2);
    }
    return levels;
}

void check_points_and_table(const torch::Tensor& points, const torch::Tensor& table, int64_t n_params) {
    TORCH_CHECK_VALUE(points.dim() == 2 && points.size(1) == 3, "hash_encode: points must be [N, 3], got ",
                      points.sizes());
    TORCH_CHECK_VALUE(table.dim() == 2 && table.size(1) >= 1, "hash_encode: table must be [n_params, F], got ",
                      table.sizes());
    TORCH_CHECK_VALUE(table.size(0) == n_params, "hash_encode: table must have ", n_params,
                      " rows for these levels, got ", table.size(0));
    TORCH_CHECK_VALUE(points.scalar_type() == at::kFloat || points.scalar_type() == at::kDouble,
                      "hash_encode: points must be float32 or float64, got ", points.scalar_type());
    TORCH_CHECK_VALUE(table.scalar_type() == points.scalar_type(), "hash_encode: table dtype ", table.scalar_type(),
                      " differs from points dtype ", points.scalar_type());
    TORCH_CHECK_VALUE(table.device() == points.device(), "hash_encode: table is on ", table.device(),
                      " but points are on ", points.device());
    TORCH_CHECK_VALUE(points.device().is_cpu() || points.device().is_cuda(),
                      "hash_encode: expected CPU or CUDA tensors, got device ", points.device());
    TORCH_CHECK_VALUE(points.is_contiguous(), "hash_encode: points must be contiguous");
    TORCH_CHECK_VALUE(table.is_contiguous(), "hash_encode: table must be contiguous");
}

// ---- CPU path ---------------------------------------------------------------------------------------

// Calls fn with the feature count as a compile-time constant for the usual counts, so the inlined
// per-corner loops unroll; any other count runs the same code with a runtime bound.
template <typename Fn>
void with_feature_count(int n_features, Fn&& fn) {
    switch (n_features) {
        case 1: fn(std::integral_constant<int, 1>()); break;
        case 2: fn(std::integral_constant<int, 2>()); break;
        case 4: fn(std::integral_constant<int, 4>()); break;
        case 8: fn(std::integral_constant<int, 8>()); break;
        default: fn(n_features);
    }
}

int thread_count(int64_t work, int64_t max_threads) {
    if (work < kSerialWork) return 1;
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(cpu_threads(), max_threads)));
}

template <typename T, typename Features>
void forward_cpu(const T* points, const T* table, int64_t n_points, Features n_features, const Levels& levels,
                 T* out) {
    const int64_t out_stride = int64_t(levels.count) * n_features;
    const int threads = thread_count(n_points * levels.count, n_points);
#pragma omp parallel num_threads(threads)
    for (int l = 0; l < levels.count; ++l) {
        const Level level = levels.level[l];
        T* out_level = out + int64_t(l) * n_features;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n_points; ++i) {
            const Sample<T> sample = sample_level(points + i * 3, level);
            interpolate(sample, table, n_features, out_level + i * out_stride);
        }
    }
}

struct PlainAdd {
    template <typename T>
    void operator()(T* dst, T value) const {
        *dst += value;
    }
};

// Table gradient only: each thread takes whole levels, so no two threads write the same row.
template <typename T, typename Features>
void backward_table_cpu(const T* grad_out, const T* points, int64_t n_points, Features n_features,
                        const Levels& levels, T* grad_table) {
    const int64_t out_stride = int64_t(levels.count) * n_features;
    const int threads = thread_count(n_points * levels.count, levels.count);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int l = 0; l < levels.count; ++l) {
        const Level level = levels.level[l];
        const T* grad_level = grad_out + int64_t(l) * n_features;
        for (int64_t i = 0; i < n_points; ++i) {
            const Sample<T> sample = sample_level(points + i * 3, level);
            scatter_to_table(sample, grad_level + i * out_stride, n_features, grad_table, PlainAdd());
        }
    }
}

// Point gradient: level by level, points split across threads. Each point's gradient belongs to one
// thread and gathers the levels in order, so the result does not depend on the thread count.
template <typename T, typename Features>
void backward_points_cpu(const T* grad_out, const T* points, const T* table, int64_t n_points, Features n_features,
                         const Levels& levels, T* grad_points) {
    const int64_t out_stride = int64_t(levels.count) * n_features;
    const int threads = thread_count(n_points * levels.count, n_points);
#pragma omp parallel num_threads(threads)
    for (int l = 0; l < levels.count; ++l) {
        const Level level = levels.level[l];
        const T* grad_level = grad_out + int64_t(l) * n_features;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n_points; ++i) {
            const Sample<T> sample = sample_level(points + i * 3, level);
            T grad_point[3];
            point_gradient(sample, table, grad_level + i * out_stride, n_features, grad_point);
            for (int axis = 0; axis < 3; ++axis) grad_points[i * 3 + axis] += grad_point[axis];
        }
    }
}

// ---- entry points --------------------------------------------------------------------------------------

#ifdef PAV_WITH_CUDA
void check_launch(const char* error, const char* what) {
    TORCH_CHECK(error == nullptr, "hash_encode: CUDA ", what, " launch failed: ", error);
}
#else
void no_cuda() {
    TORCH_CHECK_VALUE(false, "hash_encode: got CUDA tensors, but pav._C was built without CUDA "
                             "(torch without CUDA or no nvcc at build time); use backend='torch'");
}
#endif

torch::Tensor hash_encode_forward(const torch::Tensor& points, const torch::Tensor& table,
                                  const std::vector<int64_t>& resolutions, const std::vector<int64_t>& offsets,
                                  int64_t log2_hashmap_size) {
    const Levels levels = make_levels(resolutions, offsets, log2_hashmap_size);
    check_points_and_table(points, table, offsets.back());
    const int64_t n_points = points.size(0);
    const int n_features = static_cast<int>(table.size(1));
    auto out = torch::empty({n_points, int64_t(levels.count) * n_features}, points.options());  // [N, L*F]
    AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hash_encode_forward", [&] {
        if (points.is_cuda()) {
#ifdef PAV_WITH_CUDA
            const c10::cuda::CUDAGuard guard(points.device());
            check_launch(launch_forward<scalar_t>(points.data_ptr<scalar_t>(), table.data_ptr<scalar_t>(), n_points,
                                                  n_features, levels, out.data_ptr<scalar_t>(),
                                                  c10::cuda::getCurrentCUDAStream().stream()),
                         "forward");
#else
            no_cuda();
#endif
        } else {
            with_feature_count(n_features, [&](auto features) {
                forward_cpu<scalar_t>(points.data_ptr<scalar_t>(), table.data_ptr<scalar_t>(), n_points, features,
                                      levels, out.data_ptr<scalar_t>());
            });
        }
    });
    return out;
}

// Returns (grad_table [n_params, F] or None, grad_points [N, 3] or None), each only when asked for.
std::tuple<torch::Tensor, torch::Tensor> hash_encode_backward(const torch::Tensor& grad_out,
                                                              const torch::Tensor& points, const torch::Tensor& table,
                                                              const std::vector<int64_t>& resolutions,
                                                              const std::vector<int64_t>& offsets,
                                                              int64_t log2_hashmap_size, bool need_table_grad,
                                                              bool need_points_grad) {
    const Levels levels = make_levels(resolutions, offsets, log2_hashmap_size);
    check_points_and_table(points, table, offsets.back());
    const int64_t n_points = points.size(0);
    const int n_features = static_cast<int>(table.size(1));
    TORCH_CHECK_VALUE(grad_out.dim() == 2 && grad_out.size(0) == n_points &&
                          grad_out.size(1) == int64_t(levels.count) * n_features,
                      "hash_encode: grad_out must be [", n_points, ", ", levels.count * n_features, "], got ",
                      grad_out.sizes());
    TORCH_CHECK_VALUE(grad_out.scalar_type() == points.scalar_type(), "hash_encode: grad_out dtype ",
                      grad_out.scalar_type(), " differs from points dtype ", points.scalar_type());
    TORCH_CHECK_VALUE(grad_out.device() == points.device(), "hash_encode: grad_out is on ", grad_out.device(),
                      " but points are on ", points.device());
    TORCH_CHECK_VALUE(grad_out.is_contiguous(), "hash_encode: grad_out must be contiguous");
    torch::Tensor grad_table, grad_points;  // [n_params, F], [N, 3]; undefined (None) unless asked for
    if (need_table_grad) grad_table = torch::zeros_like(table);
    if (need_points_grad) grad_points = torch::zeros_like(points);
    if (!need_table_grad && !need_points_grad) return {grad_table, grad_points};
    AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hash_encode_backward", [&] {
        scalar_t* grad_table_ptr = need_table_grad ? grad_table.data_ptr<scalar_t>() : nullptr;
        scalar_t* grad_points_ptr = need_points_grad ? grad_points.data_ptr<scalar_t>() : nullptr;
        if (points.is_cuda()) {
#ifdef PAV_WITH_CUDA
            const c10::cuda::CUDAGuard guard(points.device());
            check_launch(launch_backward<scalar_t>(grad_out.data_ptr<scalar_t>(), points.data_ptr<scalar_t>(),
                                                   table.data_ptr<scalar_t>(), n_points, n_features, levels,
                                                   grad_table_ptr, grad_points_ptr,
                                                   c10::cuda::getCurrentCUDAStream().stream()),
                         "backward");
#else
            no_cuda();
#endif
        } else {
            with_feature_count(n_features, [&](auto features) {
                if (need_table_grad) {
                    backward_table_cpu<scalar_t>(grad_out.data_ptr<scalar_t>(), points.data_ptr<scalar_t>(),
                                                 n_points, features, levels, grad_table_ptr);
                }
                if (need_points_grad) {
                    backward_points_cpu<scalar_t>(grad_out.data_ptr<scalar_t>(), points.data_ptr<scalar_t>(),
                                                  table.data_ptr<scalar_t>(), n_points, features, levels,
                                                  grad_points_ptr);
                }
            });
        }
    });
    return {grad_table, grad_points};
}

}  // namespace

void register_hashgrid(pybind11::module_& m) {
    // Both release the GIL while they run: they touch no Python object.
    m.def("hash_encode_forward", &hash_encode_forward, "Multiresolution hash encoding: points [N, 3] -> [N, L*F]",
          pybind11::call_guard<pybind11::gil_scoped_release>(), pybind11::arg("points"), pybind11::arg("table"), pybind11::arg("resolutions"), pybind11::arg("offsets"),
          pybind11::arg("log2_hashmap_size"));
    m.def("hash_encode_backward", &hash_encode_backward,
          "Gradients of hash_encode_forward: (grad_table [n_params, F] or None, grad_points [N, 3] or None)",
          pybind11::call_guard<pybind11::gil_scoped_release>(), pybind11::arg("grad_out"), pybind11::arg("points"), pybind11::arg("table"), pybind11::arg("resolutions"),
          pybind11::arg("offsets"), pybind11::arg("log2_hashmap_size"), pybind11::arg("need_table_grad"),
          pybind11::arg("need_points_grad"));
}

}  // namespace hashgrid

void register_hashgrid(pybind11::module_& m) { hashgrid::register_hashgrid(m); }

}  // namespace pav
