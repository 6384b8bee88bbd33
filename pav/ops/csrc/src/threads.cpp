// set_num_threads / get_num_threads of pav._C (see threads.h).
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <atomic>

#include "threads.h"

namespace pav {
namespace {

std::atomic<int> g_threads{0};  // 0: follow torch

}  // namespace

int cpu_threads() {
    const int chosen = g_threads.load(std::memory_order_relaxed);
    return chosen > 0 ? chosen : std::max(1, at::get_num_threads());
}

void register_threads(pybind11::module_& m) {
    m.def(
        "set_num_threads",
        [](int64_t n) {
            TORCH_CHECK_VALUE(n >= 0 && n <= (1 << 16), "set_num_threads: n must be in [1, 65536], or 0 to follow ",
                              "torch's thread count, got ", n);
            g_threads.store(static_cast<int>(n), std::memory_order_relaxed);
        },
        "Threads of the extension's CPU loops (0: follow torch.get_num_threads())", py::arg("n"));
    m.def("get_num_threads", &cpu_threads, "Threads the extension's CPU loops use");
}

}  // namespace pav
