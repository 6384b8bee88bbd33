// Binned-SAH BVH build and refit on the CPU (the CUDA path builds here too, then copies).
#include "bvh_build.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

namespace pav {
namespace {

constexpr int kBins = 16;
constexpr float kCostTraverse = 1.0f;
constexpr float kCostTriangle = 1.0f;
constexpr int kMedianDepth = 32;       // beyond this depth split at the median: depth stays < 64

// Four lanes (the last unused) so that grow() compiles to one packed min and one packed max.
struct alignas(16) Box {
    float lo[4], hi[4];
    void reset() {
        for (int a = 0; a < 4; ++a) { lo[a] = INFINITY; hi[a] = -INFINITY; }
    }
    void grow(const float* l, const float* h) {
        for (int a = 0; a < 4; ++a) { lo[a] = l[a] < lo[a] ? l[a] : lo[a]; hi[a] = h[a] > hi[a] ? h[a] : hi[a]; }
    }
    void grow(const Box& b) { grow(b.lo, b.hi); }
    float half_area() const {
        float dx = hi[0] - lo[0], dy = hi[1] - lo[1], dz = hi[2] - lo[2];
        if (!(dx >= 0.0f)) return 0.0f;
        return dx * dy + dy * dz + dz * dx;
    }
};

// A triangle during the build, moved with it by partitions: its padded box, with the face
// index in the spare fourth lane of lo (32 bytes, so partitions move half a cache line).
// Splits use the box centre as the triangle's position.
struct alignas(16) Prim {
    float lo[4], hi[4];
    int32_t id() const {
        int32_t v;
        std::memcpy(&v, &lo[3], sizeof(v));
        return v;
    }
    float centre(int axis) const { return 0.5f * (lo[axis] + hi[axis]); }
    void grow_centre(Box& box) const {
        const float c[4] = {centre(0), centre(1), centre(2), 0.0f};
        box.grow(c, c);
    }
};

struct Task {
    int32_t node, start, end, depth;
    Box box, cbox;  // bounds of the triangles' boxes and of their centroids
};

struct Bin {
    Box box;
    int32_t count;
};

inline int bin_index(float c, float c0, float scale) { return std::min(kBins - 1, std::max(0, (int)((c - c0) * scale))); }

// Splits [t.start, t.end) at the median centroid along the widest centroid axis.
int32_t median_split(Prim* prims, const Task& t) {
    int axis = 0;
    for (int a = 1; a < 3; ++a) {
        if (t.cbox.hi[a] - t.cbox.lo[a] > t.cbox.hi[axis] - t.cbox.lo[axis]) axis = a;
    }
    int32_t mid = t.start + (t.end - t.start) / 2;
    std::nth_element(prims + t.start, prims + mid, prims + t.end,
                     [axis](const Prim& a, const Prim& b) { return a.centre(axis) < b.centre(axis); });
    return mid;
}

void bounds_of(const Prim* prims, int32_t start, int32_t end, Box& box, Box& cbox) {
    box.reset();
    cbox.reset();
    for (int32_t i = start; i < end; ++i) {
        box.grow(prims[i].lo, prims[i].hi);
        prims[i].grow_centre(cbox);
    }
}

// Chooses how to split task t: true with the two halves in left / right (node fields
// unset), false when t should become a leaf.
bool split_task(Prim* prims, const Task& t, int max_leaf, Task& left, Task& right) {
    const int32_t n = t.end - t.start;
    if (n <= 1) return false;
    // Bin the centroids on all three axes in one pass, then sweep each axis for the best SAH plane.
    float c0[3], scale[3];
    bool usable[3];
    for (int a = 0; a < 3; ++a) {
        float extent = t.cbox.hi[a] - t.cbox.lo[a];
        usable[a] = extent > 0.0f && t.depth < kMedianDepth;
        c0[a] = t.cbox.lo[a];
        scale[a] = usable[a] ? kBins / extent : 0.0f;
    }
    Bin bins[3][kBins];
    for (auto& axis_bins : bins) {
        for (auto& b : axis_bins) { b.box.reset(); b.count = 0; }
    }
    if (usable[0] || usable[1] || usable[2]) {
        for (int32_t i = t.start; i < t.end; ++i) {
            const Prim& p = prims[i];
            for (int a = 0; a < 3; ++a) {
                Bin& b = bins[a][bin_index(p.centre(a), c0[a], scale[a])];
                b.count++;
                b.box.grow(p.lo, p.hi);
            }
        }
    }
    float best_cost = INFINITY;
    int best_axis = -1, best_split = -1;
    Box best_left, best_right;
    for (int a = 0; a < 3; ++a) {
        if (!usable[a]) continue;
        Box right_box[kBins];
        int32_t right_count[kBins];
        Box acc;
        acc.reset();
        int32_t cnt = 0;
        for (int b = kBins - 1; b > 0; --b) {
            acc.grow(bins[a][b].box);
            cnt += bins[a][b].count;
            right_box[b] = acc;
            right_count[b] = cnt;
        }
        acc.reset();
        cnt = 0;
        for (int b = 0; b < kBins - 1; ++b) {
            acc.grow(bins[a][b].box);
            cnt += bins[a][b].count;
            if (cnt == 0 || right_count[b + 1] == 0) continue;
            float cost = acc.half_area() * cnt + right_box[b + 1].half_area() * right_count[b + 1];
            if (cost < best_cost) {
                best_cost = cost;
                best_axis = a;
                best_split = b + 1;
                best_left = acc;
                best_right = right_box[b + 1];
            }
        }
    }
    float parent_area = t.box.half_area();
    float split_cost = parent_area > 0.0f ? kCostTraverse + kCostTriangle * best_cost / parent_area : INFINITY;
    if (best_axis >= 0 && n <= max_leaf && kCostTriangle * n <= split_cost) return false;
    if (best_axis < 0 && n <= max_leaf && t.depth < kMedianDepth) return false;  // coincident centroids

    left = Task{0, t.start, 0, t.depth + 1, {}, {}};
    right = Task{0, 0, t.end, t.depth + 1, {}, {}};
    if (best_axis >= 0) {
        // Two-pointer partition that gathers each side's centroid bounds on the way.
        const int a = best_axis;
        left.cbox.reset();
        right.cbox.reset();
        int32_t i = t.start, j = t.end - 1;
        while (i <= j) {
            if (bin_index(prims[i].centre(a), c0[a], scale[a]) < best_split) {
                prims[i].grow_centre(left.cbox);
                ++i;
            } else {
                prims[i].grow_centre(right.cbox);
                std::swap(prims[i], prims[j]);
                --j;
            }
        }
        left.end = right.start = i;
        left.box = best_left;
        right.box = best_right;
    } else {
        int32_t mid = median_split(prims, t);
        left.end = right.start = mid;
        bounds_of(prims, left.start, left.end, left.box, left.cbox);
        bounds_of(prims, right.start, right.end, right.box, right.cbox);
    }
    return true;
}

void set_box(BVHNode& node, const Box& box) {
    for (int a = 0; a < 3; ++a) { node.lo[a] = box.lo[a]; node.hi[a] = box.hi[a]; }
}

// Builds the subtree of `root` (its node already allocated at root.node); child pairs are
// allocated from n_nodes on, which must be even.
void build_subtree(Prim* prims, const Task& root, int max_leaf, BVHNode* nodes, int32_t* tri_ids, int32_t& n_nodes) {
    std::vector<Task> stack{root};
    while (!stack.empty()) {
        Task t = stack.back();
        stack.pop_back();
        BVHNode& node = nodes[t.node];
        set_box(node, t.box);
        Task left, right;
        if (!split_task(prims, t, max_leaf, left, right)) {
            node.first = t.start;
            node.count = t.end - t.start;
            for (int32_t i = t.start; i < t.end; ++i) tri_ids[i] = prims[i].id();
            continue;
        }
        left.node = n_nodes;
        right.node = n_nodes + 1;
        n_nodes += 2;
        node.first = left.node;
        node.count = 0;
        stack.push_back(right);
        stack.push_back(left);
    }
}

constexpr int32_t kParallelMin = 4096;  // below this a second thread costs more than it saves

}  // namespace

int32_t build_bvh(const float* verts, const int32_t* faces, int32_t n_faces, int max_leaf, int threads,
                  BVHNode* nodes, int32_t* tri_ids) {
    // Scratch kept per calling thread: fresh multi-megabyte buffers cost page faults per build.
    thread_local std::vector<Prim> prim_store;
    thread_local std::vector<BVHNode> local_nodes[2];
    prim_store.resize(n_faces);
    Prim* prims = prim_store.data();
    for (int32_t f = 0; f < n_faces; ++f) {
        float tv[9];
        gather_tri(verts, faces, f, tv);
        tri_bounds(tv, prims[f].lo, prims[f].hi);
        std::memcpy(&prims[f].lo[3], &f, sizeof(f));
        prims[f].hi[3] = 0.0f;
    }
    Task root{0, 0, n_faces, 0, {}, {}};
    bounds_of(prims, 0, n_faces, root.box, root.cbox);
    if (n_faces == 1) {
        set_box(nodes[0], root.box);
        nodes[0].first = 0;
        nodes[0].count = 1;
        tri_ids[0] = prims[0].id();
        return 1;
    }
    // Node 1 stays unused so every child pair starts at an even index: one 64-byte line per pair.
    nodes[1] = kUnusedNode;
    int32_t n_nodes = 2;
    Task halves[2];
    const bool parallel = n_faces >= kParallelMin && threads > 1 && !omp_in_parallel();
    if (!parallel || !split_task(prims, root, max_leaf, halves[0], halves[1])) {
        build_subtree(prims, root, max_leaf, nodes, tri_ids, n_nodes);
        return n_nodes;
    }
    // The root's two halves are built on two threads into local arrays, then spliced in:
    // local node 0 -> global 2 + side, local k >= 2 -> k + offset[side] (offsets stay even).
    int32_t local_count[2] = {2, 2};
    // The second thread must see this thread's buffers, not its own thread_local ones.
    std::vector<BVHNode>* half_nodes = local_nodes;
    auto build_half = [&, half_nodes](int side) {
        const int32_t n = halves[side].end - halves[side].start;
        half_nodes[side].assign(2 * (size_t)n + 2, kUnusedNode);
        halves[side].node = 0;
        build_subtree(prims, halves[side], max_leaf, half_nodes[side].data(), tri_ids, local_count[side]);
    };
#pragma omp parallel for num_threads(2) schedule(static, 1)
    for (int side = 0; side < 2; ++side) build_half(side);
    set_box(nodes[0], root.box);
    nodes[0].first = 2;
    nodes[0].count = 0;
    const int32_t offset[2] = {2, local_count[0]};
    for (int side = 0; side < 2; ++side) {
        auto global = [&](int32_t k) { return k == 0 ? 2 + side : k + offset[side]; };
        for (int32_t k = 0; k < local_count[side]; ++k) {
            if (k == 1) continue;
            BVHNode node = local_nodes[side][k];
            if (node.count == 0) node.first = global(node.first);
            nodes[global(k)] = node;
        }
    }
    return local_count[0] + local_count[1];
}

void gather_tri_verts(const float* verts, const int32_t* faces, const int32_t* tri_ids, int32_t n_faces,
                      float* tri_verts) {
    for (int32_t k = 0; k < n_faces; ++k) gather_tri(verts, faces, tri_ids[k], tri_verts + 9 * (int64_t)k);
}

void refit_bvh(const float* verts, const int32_t* faces, int32_t n_nodes, BVHNode* nodes, const int32_t* tri_ids,
               int32_t n_faces, float* tri_verts) {
    gather_tri_verts(verts, faces, tri_ids, n_faces, tri_verts);
    for (int32_t i = n_nodes - 1; i >= 0; --i) {
        BVHNode& n = nodes[i];
        if (n.count < 0) continue;  // the unused slot
        float lo[3] = {INFINITY, INFINITY, INFINITY}, hi[3] = {-INFINITY, -INFINITY, -INFINITY};
        if (n.count > 0) {
            for (int32_t k = n.first; k < n.first + n.count; ++k) {
                float tl[3], th[3];
                tri_bounds(tri_verts + 9 * (int64_t)k, tl, th);
                for (int a = 0; a < 3; ++a) { lo[a] = std::min(lo[a], tl[a]); hi[a] = std::max(hi[a], th[a]); }
            }
        } else {
            const BVHNode& l = nodes[n.first];
            const BVHNode& r = nodes[n.first + 1];
            for (int a = 0; a < 3; ++a) {
                lo[a] = std::min(l.lo[a], r.lo[a]);
                hi[a] = std::max(l.hi[a], r.hi[a]);
            }
        }
        std::memcpy(n.lo, lo, sizeof(lo));
        std::memcpy(n.hi, hi, sizeof(hi));
    }
}

}  // namespace pav
