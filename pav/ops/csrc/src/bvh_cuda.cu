// CUDA path of the BVH ops: one thread per query, the traversal from pav/bvh.h.
#include <cuda_runtime.h>

#include "bvh_launch.h"
#include "pav/bvh.h"

namespace pav {
namespace {

constexpr int kThreads = 128;
constexpr int64_t kMaxBlocks = 2147483647;  // gridDim.x limit (compute capability >= 3.0)
const char* const kTooMuchWork = "more work than one launch covers (over 2^31 - 1 blocks of 128 threads)";

__device__ BVHView view_at(const BVHBatch& b, int32_t m) {
    return BVHView{b.nodes + m * b.node_stride, b.tri_verts + (int64_t)m * 9 * b.n_faces,
                   b.tri_ids + (int64_t)m * b.n_faces};
}

__global__ void nearest_kernel(BVHBatch bvh, const float* points, const int32_t* mesh_idx, const int64_t* order,
                               int64_t n, float bound, int64_t* face_out, float* bary_out, float* sqdist_out) {
    int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (j >= n) return;
    int64_t i = order ? order[j] : j;
    int32_t m = mesh_idx ? mesh_idx[i] : 0;
    NearestResult best = nearest_bound(bound);
    if (valid_mesh(m, bvh.n_meshes)) bvh_nearest(view_at(bvh, m), load_vec3(points + 3 * i), best);
    write_nearest(best, i, face_out, bary_out, sqdist_out);
}

__global__ void raycast_kernel(BVHBatch bvh, const float* origins, const float* dirs, const int32_t* mesh_idx,
                               int64_t n, int64_t* face_out, float* bary_out, float* t_out) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    int32_t m = mesh_idx ? mesh_idx[i] : 0;
    if (valid_mesh(m, bvh.n_meshes)) {
        raycast_query(view_at(bvh, m), origins, dirs, i, t_out, face_out, bary_out);
    } else {
        write_ray(ray_miss(), i, t_out, face_out, bary_out);
    }
}

__global__ void morton_kernel(BVHBatch bvh, const float* points, const int32_t* mesh_idx, int64_t n, int64_t* keys) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    int32_t m = mesh_idx ? mesh_idx[i] : 0;
    // Any key will do for a query with a bad mesh index: the nearest kernel never reads its tree.
    const bool valid = valid_mesh(m, bvh.n_meshes);
    keys[i] = valid ? (int64_t)query_key(load_vec3(points + 3 * i), bvh.nodes[m * bvh.node_stride], m) : 0;
}

// One thread per node slot: zeroes its arrival flag and, for an inner node, names itself the parent of its
// two children (every node but the root and the unused slots is a child of exactly one inner node).
__global__ void parents_kernel(const BVHNode* nodes, const int32_t* n_nodes, int32_t n_meshes, int64_t node_stride,
                               int32_t* parents, int32_t* flags) {
    int64_t gid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (gid >= n_meshes * node_stride) return;
    int32_t m = (int32_t)(gid / node_stride);
    int32_t idx = (int32_t)(gid % node_stride);
    flags[gid] = 0;
    if (idx == 0) parents[gid] = -1;
    if (idx >= n_nodes[m]) return;
    const BVHNode& node = nodes[gid];
    if (node.count != 0 || node.first < 2 || node.first + 1 >= node_stride) return;  // leaves, unused slots
    parents[m * node_stride + node.first] = idx;
    parents[m * node_stride + node.first + 1] = idx;
}

// One thread per node: leaves gather their triangles and start a climb; the second child to
// arrive at a parent (atomic flag) merges both boxes and climbs on.
__global__ void refit_kernel(BVHNode* nodes, float* tri_verts, const int32_t* tri_ids, const int32_t* parents,
                             const int32_t* n_nodes, const float* verts, const int32_t* faces, int64_t n_verts,
                             int32_t n_faces, int32_t n_meshes, int64_t node_stride, int32_t* flags) {
    int64_t gid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (gid >= n_meshes * node_stride) return;
    int32_t m = (int32_t)(gid / node_stride);
    int32_t idx = (int32_t)(gid % node_stride);
    if (idx >= n_nodes[m]) return;
    BVHNode* tree = nodes + m * node_stride;
    BVHNode& leaf = tree[idx];
    if (leaf.count <= 0) return;  // inner nodes and the unused slot
    const float* mesh_verts = verts + (int64_t)m * n_verts * 3;
    float* mesh_tv = tri_verts + (int64_t)m * 9 * n_faces;
    const int32_t* mesh_ids = tri_ids + (int64_t)m * n_faces;
    float lo[3] = {INFINITY, INFINITY, INFINITY}, hi[3] = {-INFINITY, -INFINITY, -INFINITY};
    for (int32_t k = leaf.first; k < leaf.first + leaf.count; ++k) {
        float* tv = mesh_tv + 9 * (int64_t)k;
        gather_tri(mesh_verts, faces, mesh_ids[k], tv);
        float tl[3], th[3];
        tri_bounds(tv, tl, th);
        for (int a = 0; a < 3; ++a) { lo[a] = fminf(lo[a], tl[a]); hi[a] = fmaxf(hi[a], th[a]); }
    }
    for (int a = 0; a < 3; ++a) { leaf.lo[a] = lo[a]; leaf.hi[a] = hi[a]; }
    int32_t node = parents[m * node_stride + idx];
    while (node >= 0) {
        __threadfence();
        if (atomicAdd(&flags[m * node_stride + node], 1) == 0) return;  // the sibling is not done yet
        BVHNode& p = tree[node];
        const volatile BVHNode& l = tree[p.first];
        const volatile BVHNode& r = tree[p.first + 1];
        for (int a = 0; a < 3; ++a) {
            p.lo[a] = fminf(l.lo[a], r.lo[a]);
            p.hi[a] = fmaxf(l.hi[a], r.hi[a]);
        }
        node = parents[m * node_stride + node];
    }
}

// Blocks of kThreads covering n > 0 items, or 0 when one launch cannot cover them.
unsigned int blocks_for(int64_t n) {
    const int64_t blocks = (n + kThreads - 1) / kThreads;
    return blocks <= kMaxBlocks ? (unsigned int)blocks : 0u;
}

const char* last_error() {
    const cudaError_t status = cudaGetLastError();
    return status == cudaSuccess ? nullptr : cudaGetErrorString(status);
}

}  // namespace

const char* launch_bvh_nearest(const BVHBatch& bvh, const float* points, const int32_t* mesh_idx,
                               const int64_t* order, int64_t n, float max_sqdist, int64_t* face_out, float* bary_out,
                               float* sqdist_out, void* stream) {
    if (n <= 0) return nullptr;
    const unsigned int blocks = blocks_for(n);
    if (blocks == 0) return kTooMuchWork;
    nearest_kernel<<<blocks, kThreads, 0, (cudaStream_t)stream>>>(bvh, points, mesh_idx, order, n, max_sqdist,
                                                                  face_out, bary_out, sqdist_out);
    return last_error();
}

const char* launch_bvh_raycast(const BVHBatch& bvh, const float* origins, const float* dirs, const int32_t* mesh_idx,
                               int64_t n, int64_t* face_out, float* bary_out, float* t_out, void* stream) {
    if (n <= 0) return nullptr;
    const unsigned int blocks = blocks_for(n);
    if (blocks == 0) return kTooMuchWork;
    raycast_kernel<<<blocks, kThreads, 0, (cudaStream_t)stream>>>(bvh, origins, dirs, mesh_idx, n, face_out, bary_out,
                                                                  t_out);
    return last_error();
}

const char* launch_bvh_morton(const BVHBatch& bvh, const float* points, const int32_t* mesh_idx, int64_t n,
                              int64_t* keys, void* stream) {
    if (n <= 0) return nullptr;
    const unsigned int blocks = blocks_for(n);
    if (blocks == 0) return kTooMuchWork;
    morton_kernel<<<blocks, kThreads, 0, (cudaStream_t)stream>>>(bvh, points, mesh_idx, n, keys);
    return last_error();
}

const char* launch_bvh_refit(BVHNode* nodes, float* tri_verts, const int32_t* tri_ids, const int32_t* n_nodes,
                             const float* verts, const int32_t* faces, int64_t n_verts, int32_t n_faces,
                             int32_t n_meshes, int64_t node_stride, int32_t* scratch, void* stream) {
    const int64_t total = (int64_t)n_meshes * node_stride;
    if (total <= 0) return nullptr;  // an empty batch: a grid of 0 blocks would itself be a launch error
    const unsigned int blocks = blocks_for(total);
    if (blocks == 0) return kTooMuchWork;
    int32_t* parents = scratch;
    int32_t* flags = scratch + total;
    parents_kernel<<<blocks, kThreads, 0, (cudaStream_t)stream>>>(nodes, n_nodes, n_meshes, node_stride, parents,
                                                                  flags);
    if (const char* error = last_error()) return error;
    refit_kernel<<<blocks, kThreads, 0, (cudaStream_t)stream>>>(nodes, tri_verts, tri_ids, parents, n_nodes, verts,
                                                                faces, n_verts, n_faces, n_meshes, node_stride, flags);
    return last_error();
}

}  // namespace pav
