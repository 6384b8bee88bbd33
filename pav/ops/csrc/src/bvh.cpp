// Torch entry points of the BVH ops and their CPU (OpenMP) path.
#include <torch/extension.h>

#include <algorithm>
#include <cfloat>
#include <vector>

#include "bvh_build.h"
#include "bvh_launch.h"
#include "pav/bvh.h"
#include "threads.h"

#ifdef PAV_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace pav {
namespace {

using torch::Tensor;

void check_tensor(const Tensor& t, const char* name, torch::ScalarType dtype, int64_t dim) {
    TORCH_CHECK_VALUE(t.scalar_type() == dtype, name, " must be ", c10::toString(dtype), ", got ",
                      c10::toString(t.scalar_type()));
    TORCH_CHECK_VALUE(t.dim() == dim, name, " must have ", dim, " dimensions, got shape ", t.sizes());
    TORCH_CHECK_VALUE(t.is_contiguous(), name, " must be contiguous");
}

void check_same_device(const Tensor& a, const Tensor& b, const char* na, const char* nb) {
    TORCH_CHECK_VALUE(a.device() == b.device(), na, " is on ", a.device(), " but ", nb, " is on ", b.device());
}

struct Tree {
    Tensor nodes, tri_verts, tri_ids;
    int64_t n_meshes, node_stride, n_faces;
};

Tree check_tree(const Tensor& nodes, const Tensor& tri_verts, const Tensor& tri_ids) {
    check_tensor(nodes, "nodes", torch::kInt32, 3);
    check_tensor(tri_verts, "tri_verts", torch::kFloat32, 3);
    check_tensor(tri_ids, "tri_ids", torch::kInt32, 2);
    TORCH_CHECK_VALUE(nodes.size(2) == 8, "nodes must be [B, M, 8]");
    TORCH_CHECK_VALUE(tri_verts.size(2) == 9, "tri_verts must be [B, F, 9]");
    TORCH_CHECK_VALUE(tri_verts.size(0) == nodes.size(0) && tri_ids.size(0) == nodes.size(0) &&
                          tri_ids.size(1) == tri_verts.size(1),
                      "nodes, tri_verts and tri_ids disagree on B or F");
    check_same_device(nodes, tri_verts, "nodes", "tri_verts");
    check_same_device(nodes, tri_ids, "nodes", "tri_ids");
    return Tree{nodes, tri_verts, tri_ids, nodes.size(0), nodes.size(1), tri_verts.size(1)};
}

BVHView view_of(const Tree& t, int64_t m) {
    const BVHNode* nodes = reinterpret_cast<const BVHNode*>(t.nodes.data_ptr<int32_t>()) + m * t.node_stride;
    return BVHView{nodes, t.tri_verts.data_ptr<float>() + m * 9 * t.n_faces, t.tri_ids.data_ptr<int32_t>() + m * t.n_faces};
}

#ifdef PAV_WITH_CUDA
BVHBatch batch_of(const Tree& t) {
    return BVHBatch{reinterpret_cast<const BVHNode*>(t.nodes.data_ptr<int32_t>()), t.tri_verts.data_ptr<float>(),
                    t.tri_ids.data_ptr<int32_t>(), t.node_stride, (int32_t)t.n_faces, (int32_t)t.n_meshes};
}
void* current_stream(const Tensor& t) {
    return (void*)c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}
// A failed launch leaves the outputs unwritten: it must fail here, under this op's name.
void check_launch(const char* error, const char* op) {
    TORCH_CHECK(error == nullptr, op, ": CUDA launch failed: ", error);
}
#endif

const int32_t* mesh_ptr(const Tensor& mesh_idx) { return mesh_idx.numel() ? mesh_idx.data_ptr<int32_t>() : nullptr; }

void check_queries(const Tree& t, const Tensor& a, const char* name, const Tensor& mesh_idx) {
    check_tensor(a, name, torch::kFloat32, 2);
    TORCH_CHECK_VALUE(a.size(1) == 3, name, " must be [N, 3], got shape ", a.sizes());
    check_same_device(a, t.nodes, name, "the BVH");
    check_tensor(mesh_idx, "mesh_idx", torch::kInt32, 1);
    TORCH_CHECK_VALUE(mesh_idx.numel() == 0 || mesh_idx.size(0) == a.size(0), "mesh_idx must be [N] like ", name);
    TORCH_CHECK_VALUE(mesh_idx.numel() > 0 || t.n_meshes == 1 || a.size(0) == 0,
                      "mesh_idx is required when the BVH holds ", t.n_meshes, " meshes");
    if (mesh_idx.numel()) check_same_device(mesh_idx, a, "mesh_idx", name);
}

// LSD radix sort of (key, index) pairs by the low `bits` bits of key, 12 bits a pass; returns the indices.
std::vector<int64_t> sorted_order(std::vector<uint64_t>& keys, int bits) {
    constexpr int kDigit = 12, kBuckets = 1 << kDigit;
    const int64_t n = (int64_t)keys.size();
    std::vector<int64_t> idx(n), idx_tmp(n);
    std::vector<uint64_t> key_tmp(n);
    for (int64_t i = 0; i < n; ++i) idx[i] = i;
    std::vector<int64_t> count(kBuckets + 1);
    for (int shift = 0; shift < bits; shift += kDigit) {
        std::fill(count.begin(), count.end(), 0);
        for (int64_t i = 0; i < n; ++i) count[((keys[i] >> shift) & (kBuckets - 1)) + 1]++;
        for (int b = 0; b < kBuckets; ++b) count[b + 1] += count[b];
        for (int64_t i = 0; i < n; ++i) {
            int64_t dst = count[(keys[i] >> shift) & (kBuckets - 1)]++;
            key_tmp[dst] = keys[i];
            idx_tmp[dst] = idx[i];
        }
        keys.swap(key_tmp);
        idx.swap(idx_tmp);
    }
    return idx;
}

int key_bits(int64_t n_meshes) {
    int bits = kQueryKeyBits;
    while (n_meshes > 1) { ++bits; n_meshes = (n_meshes + 1) / 2; }
    return bits;
}

constexpr int64_t kSortMin = 4096;    // below this, sorting costs more than it saves
constexpr int64_t kChunk = 2048;      // queries per OpenMP work item; the seed runs within one

// Queries in the given order, each seeded with its predecessor's triangle (same chunk, same mesh): the seed
// bounds the search, the tie rule of bvh_nearest decides the result, so the order never changes it.
void nearest_cpu(const Tree& t, const float* pp, const int32_t* mp, int64_t n, float bound, int64_t* fo, float* bo,
                 float* so) {
    const int64_t n_chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(dynamic, 1) num_threads(cpu_threads())
    for (int64_t c = 0; c < n_chunks; ++c) {
        int32_t seed_slot = -1, seed_mesh = -1;
        for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
            int32_t m = mp ? mp[i] : 0;
            NearestResult best = nearest_bound(bound);
            if (!valid_mesh(m, t.n_meshes)) {  // nothing to read: the result says "not found"
                write_nearest(best, i, fo, bo, so);
                continue;
            }
            BVHView view = view_of(t, m);
            Vec3 p = load_vec3(pp + 3 * i);
            if (seed_slot >= 0 && seed_mesh == m) {  // the previous query's triangle bounds this one
                float b[3];
                float d2 = leaf_tri_sqdist(view.tri_verts + 9 * (int64_t)seed_slot, p, b);
                offer_nearest(view, seed_slot, d2, b, best);
            }
            bvh_nearest(view, p, best);
            write_nearest(best, i, fo, bo, so);
            if (best.slot >= 0) {
                seed_slot = best.slot;
                seed_mesh = m;
            }
        }
    }
}

}  // namespace

std::vector<Tensor> bvh_build_op(const Tensor& verts, const Tensor& faces, int64_t max_leaf) {
    check_tensor(verts, "verts", torch::kFloat32, 3);
    check_tensor(faces, "faces", torch::kInt32, 2);
    TORCH_CHECK_VALUE(verts.device().is_cpu() && faces.device().is_cpu(), "bvh_build runs on CPU tensors");
    TORCH_CHECK_VALUE(verts.size(2) == 3 && faces.size(1) == 3, "verts must be [B, V, 3] and faces [F, 3]");
    TORCH_CHECK_VALUE(faces.size(0) > 0 && faces.size(0) < (1 << 30), "faces must hold 1 to 2^30 triangles");
    TORCH_CHECK_VALUE(max_leaf >= 1 && max_leaf <= 64, "max_leaf must be in [1, 64]");
    const int64_t B = verts.size(0), V = verts.size(1), F = faces.size(0);
    auto mm = faces.aminmax();
    TORCH_CHECK_VALUE(std::get<0>(mm).item<int32_t>() >= 0 && std::get<1>(mm).item<int32_t>() < V,
                      "faces index vertices outside [0, ", V, ")");
    auto opts_i = torch::TensorOptions().dtype(torch::kInt32);
    Tensor tri_ids = torch::empty({B, F}, opts_i);
    Tensor n_nodes = torch::empty({B}, opts_i);
    Tensor tri_verts = torch::empty({B, F, 9}, torch::TensorOptions().dtype(torch::kFloat32));
    const float* vp = verts.data_ptr<float>();
    const int32_t* fp = faces.data_ptr<int32_t>();
    int32_t* count_p = n_nodes.data_ptr<int32_t>();
    // Each tree is built into a 2F scratch, then kept at its own size until the batch's stride is known.
    std::vector<std::vector<BVHNode>> trees(B);
    const int threads = cpu_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (B > 1)
    for (int64_t m = 0; m < B; ++m) {
        thread_local std::vector<BVHNode> scratch;
        scratch.resize(2 * (size_t)F);
        int32_t count = build_bvh(vp + m * V * 3, fp, (int32_t)F, (int)max_leaf, threads, scratch.data(),
                                  tri_ids.data_ptr<int32_t>() + m * F);
        trees[m].assign(scratch.begin(), scratch.begin() + count);
        count_p[m] = count;
        gather_tri_verts(vp + m * V * 3, fp, tri_ids.data_ptr<int32_t>() + m * F, (int32_t)F,
                         tri_verts.data_ptr<float>() + m * F * 9);  // the build's boxes are already final
    }
    int64_t stride = 0;
    for (int64_t m = 0; m < B; ++m) stride = std::max<int64_t>(stride, count_p[m]);
    stride += stride & 1;  // even, so each mesh's child pairs stay on even slots
    Tensor nodes = torch::empty({B, stride, 8}, opts_i);
    BVHNode* np = reinterpret_cast<BVHNode*>(nodes.data_ptr<int32_t>());
    for (int64_t m = 0; m < B; ++m) {
        std::copy(trees[m].begin(), trees[m].end(), np + m * stride);
        std::fill(np + m * stride + trees[m].size(), np + (m + 1) * stride, kUnusedNode);
    }
    return {nodes, tri_verts, tri_ids, n_nodes};
}

void bvh_refit_op(const Tensor& verts, const Tensor& faces, const Tensor& nodes, const Tensor& tri_verts,
                  const Tensor& tri_ids, const Tensor& n_nodes) {
    Tree t = check_tree(nodes, tri_verts, tri_ids);
    check_tensor(verts, "verts", torch::kFloat32, 3);
    check_tensor(faces, "faces", torch::kInt32, 2);
    check_tensor(n_nodes, "n_nodes", torch::kInt32, 1);
    TORCH_CHECK_VALUE(verts.size(0) == t.n_meshes && verts.size(2) == 3, "verts must be [", t.n_meshes,
                      ", V, 3], got shape ", verts.sizes());
    TORCH_CHECK_VALUE(faces.size(0) == t.n_faces && faces.size(1) == 3, "faces must be [", t.n_faces, ", 3]");
    TORCH_CHECK_VALUE(n_nodes.size(0) == t.n_meshes, "n_nodes must be [", t.n_meshes, "], got shape ",
                      n_nodes.sizes());
    check_same_device(verts, nodes, "verts", "the BVH");
    check_same_device(faces, nodes, "faces", "the BVH");
    check_same_device(n_nodes, nodes, "n_nodes", "the BVH");
    const int64_t V = verts.size(1);
    if (nodes.is_cuda()) {
#ifdef PAV_WITH_CUDA
        const c10::cuda::CUDAGuard guard(nodes.device());
        // The parents and the arrival flags the climb needs are derived on the device, per refit.
        Tensor scratch = torch::empty({2, t.n_meshes, t.node_stride}, nodes.options());
        check_launch(launch_bvh_refit(reinterpret_cast<BVHNode*>(nodes.data_ptr<int32_t>()),
                                      tri_verts.data_ptr<float>(), tri_ids.data_ptr<int32_t>(),
                                      n_nodes.data_ptr<int32_t>(), verts.data_ptr<float>(), faces.data_ptr<int32_t>(),
                                      V, (int32_t)t.n_faces, (int32_t)t.n_meshes, t.node_stride,
                                      scratch.data_ptr<int32_t>(), current_stream(nodes)),
                     "bvh_refit");
        return;
#else
        TORCH_CHECK_VALUE(false, "pav._C was built without CUDA; cannot refit a CUDA BVH");
#endif
    }
    // Value checks are cheap on the CPU: a bad face or node count must not make the sweep read out of bounds.
    const float* vp = verts.data_ptr<float>();
    const int32_t* fp = faces.data_ptr<int32_t>();
    const int32_t* counts = n_nodes.data_ptr<int32_t>();
    TORCH_CHECK_VALUE(std::all_of(fp, fp + 3 * t.n_faces, [V](int32_t v) { return v >= 0 && v < V; }),
                      "bvh_refit: faces index vertices outside [0, ", V, ")");
    const int64_t stride = t.node_stride;
    TORCH_CHECK_VALUE(std::all_of(counts, counts + t.n_meshes, [stride](int32_t c) { return c >= 1 && c <= stride; }),
                      "bvh_refit: n_nodes must lie in [1, ", stride, "]");
#pragma omp parallel for schedule(dynamic, 1) num_threads(cpu_threads()) if (t.n_meshes > 1)
    for (int64_t m = 0; m < t.n_meshes; ++m) {
        BVHNode* np = reinterpret_cast<BVHNode*>(nodes.data_ptr<int32_t>()) + m * t.node_stride;
        refit_bvh(vp + m * V * 3, fp, n_nodes.data_ptr<int32_t>()[m], np, tri_ids.data_ptr<int32_t>() + m * t.n_faces,
                  (int32_t)t.n_faces, tri_verts.data_ptr<float>() + m * t.n_faces * 9);
    }
}

std::vector<Tensor> bvh_nearest_op(const Tensor& nodes, const Tensor& tri_verts, const Tensor& tri_ids,
                                const Tensor& points, const Tensor& mesh_idx, double max_sqdist, bool sort) {
    Tree t = check_tree(nodes, tri_verts, tri_ids);
    check_queries(t, points, "points", mesh_idx);
    const int64_t n = points.size(0);
    Tensor face = torch::empty({n}, points.options().dtype(torch::kInt64));
    Tensor bary = torch::empty({n, 3}, points.options());
    Tensor sqdist = torch::empty({n}, points.options());
    TORCH_CHECK_VALUE(max_sqdist >= 0, "bvh_nearest: max_sqdist must be >= 0, got ", max_sqdist);
    if (n == 0) return {face, bary, sqdist};
    // Distances up to and including max_dist are accepted (nearest_bound).
    const float bound = max_sqdist > (double)FLT_MAX ? INFINITY : (float)max_sqdist;
    const int32_t* mp = mesh_ptr(mesh_idx);
    if (points.is_cuda()) {
#ifdef PAV_WITH_CUDA
        const c10::cuda::CUDAGuard guard(points.device());
        BVHBatch batch = batch_of(t);
        void* stream = current_stream(points);
        Tensor order;
        if (sort && n >= kSortMin) {
            Tensor keys = torch::empty({n}, points.options().dtype(torch::kInt64));
            check_launch(launch_bvh_morton(batch, points.data_ptr<float>(), mp, n, keys.data_ptr<int64_t>(), stream),
                         "bvh_nearest");
            order = std::get<1>(keys.sort());
        }
        check_launch(launch_bvh_nearest(batch, points.data_ptr<float>(), mp,
                                        order.defined() ? order.data_ptr<int64_t>() : nullptr, n, bound,
                                        face.data_ptr<int64_t>(), bary.data_ptr<float>(), sqdist.data_ptr<float>(),
                                        stream),
                     "bvh_nearest");
        return {face, bary, sqdist};
#else
        TORCH_CHECK_VALUE(false, "pav._C was built without CUDA; cannot query a CUDA BVH");
#endif
    }
    const float* pp = points.data_ptr<float>();
    int64_t* fo = face.data_ptr<int64_t>();
    float* bo = bary.data_ptr<float>();
    float* so = sqdist.data_ptr<float>();
    if (!sort || n < kSortMin) {
        nearest_cpu(t, pp, mp, n, bound, fo, bo, so);
        return {face, bary, sqdist};
    }
    // Morton order; the queries run on a gathered copy and their results are scattered back
    // afterwards, so the traversal streams through memory instead of missing the cache.
    std::vector<uint64_t> keys(n);
#pragma omp parallel for schedule(static) num_threads(cpu_threads())
    for (int64_t i = 0; i < n; ++i) {
        int32_t m = mp ? mp[i] : 0;
        // Any key will do for a bad mesh index: nearest_cpu reads no tree for it.
        keys[i] = valid_mesh(m, t.n_meshes) ? query_key(load_vec3(pp + 3 * i), view_of(t, m).nodes[0], m) : 0;
    }
    std::vector<int64_t> order = sorted_order(keys, key_bits(t.n_meshes));
    std::vector<float> sorted_pts(3 * n), sorted_bary(3 * n), sorted_sq(n);
    std::vector<int32_t> sorted_mesh(mp ? n : 0);
    std::vector<int64_t> sorted_face(n);
#pragma omp parallel for schedule(static) num_threads(cpu_threads())
    for (int64_t j = 0; j < n; ++j) {
        int64_t i = order[j];
        sorted_pts[3 * j] = pp[3 * i]; sorted_pts[3 * j + 1] = pp[3 * i + 1]; sorted_pts[3 * j + 2] = pp[3 * i + 2];
        if (mp) sorted_mesh[j] = mp[i];
    }
    nearest_cpu(t, sorted_pts.data(), mp ? sorted_mesh.data() : nullptr, n, bound, sorted_face.data(),
                sorted_bary.data(), sorted_sq.data());
#pragma omp parallel for schedule(static) num_threads(cpu_threads())
    for (int64_t j = 0; j < n; ++j) {
        int64_t i = order[j];
        fo[i] = sorted_face[j];
        so[i] = sorted_sq[j];
        bo[3 * i] = sorted_bary[3 * j]; bo[3 * i + 1] = sorted_bary[3 * j + 1]; bo[3 * i + 2] = sorted_bary[3 * j + 2];
    }
    return {face, bary, sqdist};
}

std::vector<Tensor> bvh_raycast_op(const Tensor& nodes, const Tensor& tri_verts, const Tensor& tri_ids,
                                const Tensor& origins, const Tensor& dirs, const Tensor& mesh_idx) {
    Tree t = check_tree(nodes, tri_verts, tri_ids);
    check_queries(t, origins, "origins", mesh_idx);
    check_queries(t, dirs, "dirs", mesh_idx);
    TORCH_CHECK_VALUE(origins.size(0) == dirs.size(0), "origins and dirs must both be [N, 3]");
    const int64_t n = origins.size(0);
    Tensor t_hit = torch::empty({n}, origins.options());
    Tensor face = torch::empty({n}, origins.options().dtype(torch::kInt64));
    Tensor bary = torch::empty({n, 3}, origins.options());
    if (n == 0) return {t_hit, face, bary};
    const int32_t* mp = mesh_ptr(mesh_idx);
    if (origins.is_cuda()) {
#ifdef PAV_WITH_CUDA
        const c10::cuda::CUDAGuard guard(origins.device());
        check_launch(launch_bvh_raycast(batch_of(t), origins.data_ptr<float>(), dirs.data_ptr<float>(), mp, n,
                                        face.data_ptr<int64_t>(), bary.data_ptr<float>(), t_hit.data_ptr<float>(),
                                        current_stream(origins)),
                     "bvh_raycast");
        return {t_hit, face, bary};
#else
        TORCH_CHECK_VALUE(false, "pav._C was built without CUDA; cannot query a CUDA BVH");
#endif
    }
    const float* op = origins.data_ptr<float>();
    const float* dp = dirs.data_ptr<float>();
    int64_t* fo = face.data_ptr<int64_t>();
    float* bo = bary.data_ptr<float>();
    float* to = t_hit.data_ptr<float>();
#pragma omp parallel for schedule(dynamic, kChunk) num_threads(cpu_threads())
    for (int64_t i = 0; i < n; ++i) {
        const int32_t m = mp ? mp[i] : 0;
        if (valid_mesh(m, t.n_meshes)) {
            raycast_query(view_of(t, m), op, dp, i, to, fo, bo);
        } else {
            write_ray(ray_miss(), i, to, fo, bo);
        }
    }
    return {t_hit, face, bary};
}

void register_bvh(pybind11::module_& m) {
    m.def("bvh_build", &bvh_build_op, "Build one BVH per mesh (CPU): nodes, tri_verts, tri_ids, n_nodes",
          py::arg("verts"), py::arg("faces"), py::arg("max_leaf"));
    m.def("bvh_refit", &bvh_refit_op, "Refit the boxes for new vertex positions, in place", py::arg("verts"),
          py::arg("faces"), py::arg("nodes"), py::arg("tri_verts"), py::arg("tri_ids"), py::arg("n_nodes"));
    m.def("bvh_nearest", &bvh_nearest_op, "Exact nearest triangle: face, bary, sqdist", py::arg("nodes"),
          py::arg("tri_verts"), py::arg("tri_ids"), py::arg("points"), py::arg("mesh_idx"), py::arg("max_sqdist"),
          py::arg("sort") = true);
    m.def("bvh_raycast", &bvh_raycast_op, "First hit: t, face, bary", py::arg("nodes"), py::arg("tri_verts"),
          py::arg("tri_ids"), py::arg("origins"), py::arg("dirs"), py::arg("mesh_idx"));
}

}  // namespace pav
