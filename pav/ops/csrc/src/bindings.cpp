// The one native module, pav._C: each op file registers its own functions.
#include <torch/extension.h>

namespace pav {
void register_bvh(pybind11::module_& m);
void register_hashgrid(pybind11::module_& m);
void register_threads(pybind11::module_& m);
}  // namespace pav

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "pav native ops: BVH nearest-triangle and ray queries, multiresolution hash encoding";
#ifdef PAV_WITH_CUDA
    m.attr("with_cuda") = true;
#else
    m.attr("with_cuda") = false;
#endif
    pav::register_bvh(m);
    pav::register_hashgrid(m);
    pav::register_threads(m);
}
