// CPU build and refit of one mesh's BVH (see pav/bvh.h for the layout).
#pragma once

#include "pav/bvh.h"

namespace pav {

// The filler of node 1 and of the slots past a mesh's node count.
constexpr BVHNode kUnusedNode{{0.0f, 0.0f, 0.0f}, 0, {0.0f, 0.0f, 0.0f}, -1};

// verts [V, 3], faces [F, 3]. Writes at most 2F nodes and tri_ids [F] (leaf order); returns the
// node count (1, or even). Node bounds are final; tri_verts are not written (gather_tri_verts
// does that). threads: how many OpenMP threads it may use (it uses 1 or 2).
int32_t build_bvh(const float* verts, const int32_t* faces, int32_t n_faces, int max_leaf, int threads,
                  BVHNode* nodes, int32_t* tri_ids);

// tri_verts [F, 9]: the corners of each leaf-ordered triangle at the current vertex positions.
void gather_tri_verts(const float* verts, const int32_t* faces, const int32_t* tri_ids, int32_t n_faces,
                      float* tri_verts);

// Gathers tri_verts for the current vertex positions and recomputes every box.
void refit_bvh(const float* verts, const int32_t* faces, int32_t n_nodes, BVHNode* nodes, const int32_t* tri_ids,
               int32_t n_faces, float* tri_verts);

}  // namespace pav
