// CUDA launchers of the BVH ops: raw pointers and a stream only, so bvh_cuda.cu needs
// no torch headers and compiles on its own with nvcc.
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

// order: the query permutation to process (sorted for coherence), or nullptr.
void launch_bvh_nearest(const BVHBatch& bvh, const float* points, const int32_t* mesh_idx, const int64_t* order,
                        int64_t n, float max_sqdist, int64_t* face_out, float* bary_out, float* sqdist_out,
                        void* stream);

void launch_bvh_raycast(const BVHBatch& bvh, const float* origins, const float* dirs, const int32_t* mesh_idx,
                        int64_t n, int64_t* face_out, float* bary_out, float* t_out, void* stream);

// 30-bit Morton code of each point in its mesh's root box, mesh index in the bits above.
void launch_bvh_morton(const BVHBatch& bvh, const float* points, const int32_t* mesh_idx, int64_t n, int64_t* keys,
                       void* stream);

// Gathers tri_verts for new vertex positions (verts [B, V, 3]) and refits every box bottom-up.
// flags: B * node_stride zero-initialised ints (scratch); parents: [B, node_stride].
void launch_bvh_refit(BVHNode* nodes, float* tri_verts, const int32_t* tri_ids, const int32_t* parents,
                      const int32_t* n_nodes, const float* verts, const int32_t* faces, int64_t n_verts,
                      int32_t n_faces, int32_t n_meshes, int64_t node_stride, int32_t* flags, void* stream);

}  // namespace pav
