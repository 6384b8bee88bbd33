// BVH layout and traversal, shared by the CPU and CUDA paths.
//
// One tree per mesh. Node i: box [lo, hi]; a leaf (count > 0) owns triangles
// [first, first + count) of the mesh's leaf-ordered triangle array; an inner node
// (count == 0) has its children at first and first + 1 (an even index, so a pair shares
// one cache line), both after it in the array, so a reverse sweep refits children before
// parents. Node 1 is unused (count < 0), as are the slots past a mesh's node count up to the
// batch's node stride.
#pragma once

#include "pav/common.h"
#include "pav/geometry.h"

namespace pav {

struct BVHNode {
    float lo[3];
    int32_t first;
    float hi[3];
    int32_t count;
};
static_assert(sizeof(BVHNode) == 32, "BVHNode must stay 32 bytes");

constexpr int kBVHStackSize = 64;

// The arrays of one mesh's tree.
struct BVHView {
    const BVHNode* nodes;   // [n_nodes]
    const float* tri_verts; // [F, 9] leaf-ordered triangle corners
    const int32_t* tri_ids; // [F] original face index of each leaf-ordered triangle
};

PAV_HD Vec3 node_lo(const BVHNode& n) { return Vec3{n.lo[0], n.lo[1], n.lo[2]}; }
PAV_HD Vec3 node_hi(const BVHNode& n) { return Vec3{n.hi[0], n.hi[1], n.hi[2]}; }

PAV_HD float leaf_tri_sqdist(const float* tv, Vec3 p, float* bary) {
    return closest_point_triangle(p, load_vec3(tv), load_vec3(tv + 3), load_vec3(tv + 6), bary);
}

// Candidates are ordered by (distance, original face id): of equally near triangles the lowest face id wins,
// whatever order the traversal (CPU or GPU, seeded or not) meets them in.
constexpr int32_t kNoFace = 0x7fffffff;  // the face id of "no candidate yet": above every real one

PAV_HD bool precedes(float dist, int32_t face, float best_dist, int32_t best_face) {
    return dist < best_dist || (dist == best_dist && face < best_face);
}

PAV_HD bool valid_mesh(int32_t m, int64_t n_meshes) { return m >= 0 && m < n_meshes; }

struct NearestResult {
    float sqdist;
    int32_t slot;  // leaf-ordered triangle index, -1 when none within the bound
    int32_t face;  // tri_ids[slot], kNoFace with slot -1
    float bary[3];
};

// No candidate yet: a triangle at squared distance <= bound (inclusive) is accepted.
PAV_HD NearestResult nearest_bound(float bound) { return NearestResult{bound, -1, kNoFace, {0.0f, 0.0f, 0.0f}}; }

// Offers leaf-ordered triangle `slot` (squared distance d2, barycentrics bary) to best.
PAV_HD void offer_nearest(const BVHView& bvh, int32_t slot, float d2, const float* bary, NearestResult& best) {
    if (!(d2 <= best.sqdist)) return;
    const int32_t face = bvh.tri_ids[slot];
    if (!precedes(d2, face, best.sqdist, best.face)) return;
    best.sqdist = d2;
    best.slot = slot;
    best.face = face;
    best.bary[0] = bary[0]; best.bary[1] = bary[1]; best.bary[2] = bary[2];
}

// Exact nearest triangle to p: the first in (squared distance, face id) order among those at most
// sqrt(best.sqdist) away. `best` may come in holding a candidate (a seed from a neighbouring query): it only
// bounds the search, since the result is that first triangle whichever candidate came in. The pruning is
// non-strict (a box exactly as far as the best is visited) so that a tied, lower face elsewhere is found.
PAV_HD void bvh_nearest(const BVHView& bvh, Vec3 p, NearestResult& best) {
    int32_t stack_node[kBVHStackSize];
    float stack_dist[kBVHStackSize];
    int sp = 0;
    int32_t node = 0;
    float node_dist = box_sqdist(p, node_lo(bvh.nodes[0]), node_hi(bvh.nodes[0]));
    if (!(node_dist <= best.sqdist)) return;
    while (true) {
        const BVHNode& n = bvh.nodes[node];
        if (n.count > 0) {
            for (int32_t k = n.first; k < n.first + n.count; ++k) {
                float bary[3];
                float d2 = leaf_tri_sqdist(bvh.tri_verts + 9 * (int64_t)k, p, bary);
                offer_nearest(bvh, k, d2, bary, best);
            }
        } else {
            int32_t left = n.first, right = n.first + 1;
            float dl = box_sqdist(p, node_lo(bvh.nodes[left]), node_hi(bvh.nodes[left]));
            float dr = box_sqdist(p, node_lo(bvh.nodes[right]), node_hi(bvh.nodes[right]));
            // Branch-free ordering; the far child is written always and kept only if it can help.
            // The stack cannot overflow: the build keeps the depth below kBVHStackSize.
            bool swap = dr < dl;
            int32_t near_node = swap ? right : left, far_node = swap ? left : right;
            float near_d = swap ? dr : dl, far_d = swap ? dl : dr;
            stack_node[sp] = far_node;
            stack_dist[sp] = far_d;
            sp += far_d <= best.sqdist ? 1 : 0;
            if (near_d <= best.sqdist) {
                node = near_node;
                continue;
            }
        }
        // Pop the next subtree that can still hold something closer (or as close, with a lower face).
        bool found = false;
        while (sp > 0) {
            --sp;
            if (stack_dist[sp] <= best.sqdist) {
                node = stack_node[sp];
                found = true;
                break;
            }
        }
        if (!found) return;
    }
}

struct RayResult {
    float t;
    int32_t slot;  // -1 on a miss
    int32_t face;  // tri_ids[slot], kNoFace on a miss
    float bary[3];
};

PAV_HD RayResult ray_miss() { return RayResult{INFINITY, -1, kNoFace, {0.0f, 0.0f, 0.0f}}; }

// First hit along the ray with finite t >= 0, in (t, face id) order: of hits at the same t the lowest face wins.
PAV_HD void bvh_raycast(const BVHView& bvh, const Ray& ray, RayResult& best) {
    int32_t stack_node[kBVHStackSize];
    float stack_t[kBVHStackSize];
    int sp = 0;
    int32_t node = 0;
    float node_t = ray_box(ray, node_lo(bvh.nodes[0]), node_hi(bvh.nodes[0]), best.t);
    if (!(node_t < INFINITY)) return;
    while (true) {
        const BVHNode& n = bvh.nodes[node];
        if (n.count > 0) {
            for (int32_t k = n.first; k < n.first + n.count; ++k) {
                const float* tv = bvh.tri_verts + 9 * (int64_t)k;
                float t, bary[3];
                if (!ray_triangle(ray, load_vec3(tv), load_vec3(tv + 3), load_vec3(tv + 6), best.t, t, bary)) continue;
                const int32_t face = bvh.tri_ids[k];
                if (!precedes(t, face, best.t, best.face)) continue;
                best.t = t;
                best.slot = k;
                best.face = face;
                best.bary[0] = bary[0]; best.bary[1] = bary[1]; best.bary[2] = bary[2];
            }
        } else {
            // ray_box keeps a box whose entry is at best.t, so a tied hit in it is still found.
            int32_t left = n.first, right = n.first + 1;
            float tl = ray_box(ray, node_lo(bvh.nodes[left]), node_hi(bvh.nodes[left]), best.t);
            float tr = ray_box(ray, node_lo(bvh.nodes[right]), node_hi(bvh.nodes[right]), best.t);
            bool swap = tr < tl;
            int32_t near_node = swap ? right : left, far_node = swap ? left : right;
            float near_t = swap ? tr : tl, far_t = swap ? tl : tr;
            stack_node[sp] = far_node;
            stack_t[sp] = far_t;
            sp += far_t < INFINITY ? 1 : 0;
            if (near_t < INFINITY) {
                node = near_node;
                continue;
            }
        }
        bool found = false;
        while (sp > 0) {
            --sp;
            if (stack_t[sp] <= best.t) {
                node = stack_node[sp];
                found = true;
                break;
            }
        }
        if (!found) return;
    }
}

// Writes query i of a batched nearest op: face index (-1 when none within the bound, or when the query's
// mesh index is out of range), barycentrics and squared distance (inf when none). Shared by the OpenMP
// loop and the kernel.
PAV_HD void write_nearest(const NearestResult& best, int64_t i, int64_t* face_out, float* bary_out,
                          float* sqdist_out) {
    const bool found = best.slot >= 0;
    face_out[i] = found ? best.face : -1;
    sqdist_out[i] = found ? best.sqdist : INFINITY;
    for (int k = 0; k < 3; ++k) bary_out[3 * i + k] = found ? best.bary[k] : 0.0f;
}

// Writes query i of a batched raycast: t = inf, face -1 and bary 0 on a miss.
PAV_HD void write_ray(const RayResult& best, int64_t i, float* t_out, int64_t* face_out, float* bary_out) {
    const bool hit = best.slot >= 0;
    t_out[i] = hit ? best.t : INFINITY;
    face_out[i] = hit ? best.face : -1;
    for (int k = 0; k < 3; ++k) bary_out[3 * i + k] = hit ? best.bary[k] : 0.0f;
}

// Query i of a batched raycast: first hit of ray (origins[i], dirs[i]).
PAV_HD void raycast_query(const BVHView& view, const float* origins, const float* dirs, int64_t i, float* t_out,
                          int64_t* face_out, float* bary_out) {
    Ray ray = make_ray(load_vec3(origins + 3 * i), load_vec3(dirs + 3 * i));
    RayResult best = ray_miss();
    bvh_raycast(view, ray, best);
    write_ray(best, i, t_out, face_out, bary_out);
}

// Box of a leaf-ordered triangle, padded so that box tests stay conservative under rounding.
PAV_HD float pad_of(float x) { return (x < 0 ? -x : x) * 2e-7f + 1e-30f; }

PAV_HD void tri_bounds(const float* tv, float* lo, float* hi) {
    for (int a = 0; a < 3; ++a) {
        float mn = fmin_(fmin_(tv[a], tv[3 + a]), tv[6 + a]);
        float mx = fmax_(fmax_(tv[a], tv[3 + a]), tv[6 + a]);
        lo[a] = mn - pad_of(mn);
        hi[a] = mx + pad_of(mx);
    }
}

// Gathers the corners of leaf-ordered triangle `slot` from the vertex array.
PAV_HD void gather_tri(const float* verts, const int32_t* faces, int32_t face, float* tv) {
    for (int k = 0; k < 3; ++k) {
        const float* v = verts + 3 * (int64_t)faces[3 * (int64_t)face + k];
        tv[3 * k] = v[0]; tv[3 * k + 1] = v[1]; tv[3 * k + 2] = v[2];
    }
}

// Sort key of a query: 8-bit Morton code per axis within the mesh's root box (a 1/256 cell
// is far finer than the coherence the seeds need), mesh index above.
constexpr int kQueryKeyBits = 24;
PAV_HD uint32_t spread_bits10(uint32_t v) {
    v &= 0x3ffu;
    v = (v | (v << 16)) & 0x030000ffu;
    v = (v | (v << 8)) & 0x0300f00fu;
    v = (v | (v << 4)) & 0x030c30c3u;
    v = (v | (v << 2)) & 0x09249249u;
    return v;
}

PAV_HD uint64_t query_key(Vec3 p, const BVHNode& root, int32_t mesh) {
    uint32_t code = 0;
    for (int a = 0; a < 3; ++a) {
        float lo = root.lo[a], ext = root.hi[a] - lo;
        float u = ext > 0.0f ? (get(p, a) - lo) / ext : 0.0f;
        u = fmin_(fmax_(u, 0.0f), 1.0f);  // NaN falls to 0 here too
        code |= spread_bits10((uint32_t)(u * 255.0f)) << a;
    }
    return ((uint64_t)(uint32_t)mesh << kQueryKeyBits) | code;
}

}  // namespace pav
