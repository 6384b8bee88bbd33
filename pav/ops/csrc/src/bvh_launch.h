// CUDA launchers of the BVH ops: raw pointers and a stream only, so bvh_cuda.cu needs
// no torch headers and compiles on its own with nvcc. Each returns nullptr on success,
// else the CUDA error string of the failed launch; none launches anything for empty work.
#pragma once

#include <cstdint>

namespace pav {

struct BVHNode;

// Trees are stored per mesh at nodes + m * node_stride, tri_verts + m * 9F, tri_ids + m * F.
struct BVHBatch {
    const BVHNode* nodes;
    const float* tri_verts;
    const int32_t* tri_ids;
    int64_t node_stride;
    int32_t n_faces;
    int32_t n_meshes;
};

// order: the query permutation to process (sorted for coherence), or nullptr. A query whose mesh
// index is outside [0, n_meshes) gets face -1, sqdist inf.
const char* launch_bvh_nearest(const BVHBatch& bvh, const float* points, const int32_t* mesh_idx,
                               const int64_t* order, int64_t n, float max_sqdist, int64_t* face_out, float* bary_out,
                               float* sqdist_out, void* stream);

// A ray whose mesh index is outside [0, n_meshes) misses (t inf, face -1).
const char* launch_bvh_raycast(const BVHBatch& bvh, const float* origins, const float* dirs, const int32_t* mesh_idx,
                               int64_t n, int64_t* face_out, float* bary_out, float* t_out, void* stream);

// Sort key of each point (pav/bvh.h query_key): Morton code in its mesh's root box, mesh index above.
const char* launch_bvh_morton(const BVHBatch& bvh, const float* points, const int32_t* mesh_idx, int64_t n,
                              int64_t* keys, void* stream);

// Gathers tri_verts for new vertex positions (verts [B, V, 3]) and refits every box bottom-up.
// scratch: 2 * B * node_stride ints, any contents (the parents and arrival flags are derived there).
const char* launch_bvh_refit(BVHNode* nodes, float* tri_verts, const int32_t* tri_ids, const int32_t* n_nodes,
                             const float* verts, const int32_t* faces, int64_t n_verts, int32_t n_faces,
                             int32_t n_meshes, int64_t node_stride, int32_t* scratch, void* stream);

}  // namespace pav
