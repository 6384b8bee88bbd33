// Exact point-triangle, ray-triangle and box queries, shared by the CPU and CUDA paths.
// The pure-torch twins in pav/ops/bvh.py follow the same formulas, case for case.
#pragma once

#include "pav/common.h"

namespace pav {

// Squared distance from p to triangle (a, b, c) and the barycentrics (of a, b, c) of the
// closest point. Voronoi-region walk over vertices, then edges, then the interior; the
// offset p - q is formed per region so a point on a vertex or edge gets an exact zero.
// Degenerate (zero-area) triangles, and slivers whose interior solve is not trustworthy,
// fall back to the closest of the three edges.
PAV_HD float segment_closest(Vec3 ap, Vec3 ab, float& s) {
    float len2 = dot(ab, ab);
    s = len2 > 0.0f ? dot(ap, ab) / len2 : 0.0f;
    s = fmin_(fmax_(s, 0.0f), 1.0f);
    Vec3 d = ap - ab * s;
    return dot(d, d);
}

PAV_HD float closest_on_edges(Vec3 p, Vec3 a, Vec3 b, Vec3 c, float* bary) {
    float s_ab, s_ac, s_bc;
    float d_ab = segment_closest(p - a, b - a, s_ab);
    float d_ac = segment_closest(p - a, c - a, s_ac);
    float d_bc = segment_closest(p - b, c - b, s_bc);
    if (d_ab <= d_ac && d_ab <= d_bc) {
        bary[0] = 1.0f - s_ab; bary[1] = s_ab; bary[2] = 0.0f;
        return d_ab;
    }
    if (d_ac <= d_bc) {
        bary[0] = 1.0f - s_ac; bary[1] = 0.0f; bary[2] = s_ac;
        return d_ac;
    }
    bary[0] = 0.0f; bary[1] = 1.0f - s_bc; bary[2] = s_bc;
    return d_bc;
}

PAV_HD float closest_point_triangle(Vec3 p, Vec3 a, Vec3 b, Vec3 c, float* bary) {
    Vec3 ab = b - a, ac = c - a, ap = p - a;
    float d1 = dot(ab, ap), d2 = dot(ac, ap);
    if (d1 <= 0.0f && d2 <= 0.0f) {
        bary[0] = 1.0f; bary[1] = 0.0f; bary[2] = 0.0f;
        return dot(ap, ap);
    }
    Vec3 bp = p - b;
    float d3 = dot(ab, bp), d4 = dot(ac, bp);
    if (d3 >= 0.0f && d4 <= d3) {
        bary[0] = 0.0f; bary[1] = 1.0f; bary[2] = 0.0f;
        return dot(bp, bp);
    }
    Vec3 cp = p - c;
    float d5 = dot(ab, cp), d6 = dot(ac, cp);
    if (d6 >= 0.0f && d5 <= d6) {
        bary[0] = 0.0f; bary[1] = 0.0f; bary[2] = 1.0f;
        return dot(cp, cp);
    }
    float vc = d1 * d4 - d3 * d2;
    if (vc <= 0.0f && d1 >= 0.0f && d3 <= 0.0f) {
        if (d1 - d3 <= 0.0f) return closest_on_edges(p, a, b, c, bary);
        float v = d1 / (d1 - d3);
        bary[0] = 1.0f - v; bary[1] = v; bary[2] = 0.0f;
        Vec3 d = ap - ab * v;
        return dot(d, d);
    }
    float vb = d5 * d2 - d1 * d6;
    if (vb <= 0.0f && d2 >= 0.0f && d6 <= 0.0f) {
        if (d2 - d6 <= 0.0f) return closest_on_edges(p, a, b, c, bary);
        float w = d2 / (d2 - d6);
        bary[0] = 1.0f - w; bary[1] = 0.0f; bary[2] = w;
        Vec3 d = ap - ac * w;
        return dot(d, d);
    }
    float va = d3 * d6 - d5 * d4;
    if (va <= 0.0f && d4 - d3 >= 0.0f && d5 - d6 >= 0.0f) {
        float den = (d4 - d3) + (d5 - d6);
        if (den <= 0.0f) return closest_on_edges(p, a, b, c, bary);
        float w = (d4 - d3) / den;
        bary[0] = 0.0f; bary[1] = 1.0f - w; bary[2] = w;
        Vec3 d = bp - (c - b) * w;
        return dot(d, d);
    }
    float denom = va + vb + vc;
    float v = vb / denom, w = vc / denom;
    // Zero area gives 0/0; a sliver can round its interior solve outside the triangle.
    if (!(denom > 0.0f) || !(v >= 0.0f && w >= 0.0f && v + w <= 1.0f)) return closest_on_edges(p, a, b, c, bary);
    bary[0] = 1.0f - v - w; bary[1] = v; bary[2] = w;
    Vec3 d = ap - ab * v - ac * w;
    return dot(d, d);
}

// Squared distance from p to the box [lo, hi]; 0 inside.
PAV_HD float box_sqdist(Vec3 p, Vec3 lo, Vec3 hi) {
    float dx = fmax_(fmax_(lo.x - p.x, p.x - hi.x), 0.0f);
    float dy = fmax_(fmax_(lo.y - p.y, p.y - hi.y), 0.0f);
    float dz = fmax_(fmax_(lo.z - p.z, p.z - hi.z), 0.0f);
    return dx * dx + dy * dy + dz * dz;
}

// A ray prepared for watertight triangle tests (shear to the dominant axis) and slab tests.
struct Ray {
    Vec3 org, inv_dir;
    int kx, ky, kz;
    float sx, sy, sz;
};

PAV_HD float safe_component(float d) {
    // Keeps 0 * inf out of the slab test; boxes are padded, so this is conservative.
    const float tiny = 1e-30f;
    return (d >= 0.0f ? d : -d) < tiny ? (d >= 0.0f ? tiny : -tiny) : d;
}

PAV_HD Ray make_ray(Vec3 o, Vec3 d) {
    Ray r;
    r.org = o;
    r.inv_dir = Vec3{1.0f / safe_component(d.x), 1.0f / safe_component(d.y), 1.0f / safe_component(d.z)};
    float ax = d.x < 0 ? -d.x : d.x, ay = d.y < 0 ? -d.y : d.y, az = d.z < 0 ? -d.z : d.z;
    int kz = (ax >= ay && ax >= az) ? 0 : (ay >= az ? 1 : 2);
    int kx = (kz + 1) % 3, ky = (kx + 1) % 3;
    if (get(d, kz) < 0.0f) { int t = kx; kx = ky; ky = t; }  // keep the winding
    r.kx = kx; r.ky = ky; r.kz = kz;
    r.sz = 1.0f / get(d, kz);
    r.sx = get(d, kx) * r.sz;
    r.sy = get(d, ky) * r.sz;
    return r;
}

// Entry distance of the ray into [lo, hi] within [0, t_max], or +inf when it misses.
// The far bound is widened by 2 gamma(3) so rounding never culls a box the ray touches.
PAV_HD float ray_box(const Ray& r, Vec3 lo, Vec3 hi, float t_max) {
    float t0x = (lo.x - r.org.x) * r.inv_dir.x, t1x = (hi.x - r.org.x) * r.inv_dir.x;
    float t0y = (lo.y - r.org.y) * r.inv_dir.y, t1y = (hi.y - r.org.y) * r.inv_dir.y;
    float t0z = (lo.z - r.org.z) * r.inv_dir.z, t1z = (hi.z - r.org.z) * r.inv_dir.z;
    float t_near = fmax_(fmax_(fmin_(t0x, t1x), fmin_(t0y, t1y)), fmax_(fmin_(t0z, t1z), 0.0f));
    float t_far = fmin_(fmin_(fmax_(t0x, t1x), fmax_(t0y, t1y)), fmin_(fmax_(t0z, t1z), t_max));
    t_far *= 1.0000004f;
    return t_near <= t_far ? t_near : INFINITY;
}

// Watertight ray-triangle test: a ray through a shared edge or vertex hits at least one
// of the triangles that share it. Hits need a finite t in [0, t_best] (a hit at t_best may
// still win its tie on the face id). Returns true on a hit and writes t and the barycentrics
// of (a, b, c).
PAV_HD bool ray_triangle(const Ray& r, Vec3 a, Vec3 b, Vec3 c, float t_best, float& t_hit, float* bary) {
    Vec3 A = a - r.org, B = b - r.org, C = c - r.org;
    float akz = get(A, r.kz), bkz = get(B, r.kz), ckz = get(C, r.kz);
    float ax = get(A, r.kx) - r.sx * akz, ay = get(A, r.ky) - r.sy * akz;
    float bx = get(B, r.kx) - r.sx * bkz, by = get(B, r.ky) - r.sy * bkz;
    float cx = get(C, r.kx) - r.sx * ckz, cy = get(C, r.ky) - r.sy * ckz;
    float U = cx * by - cy * bx;
    float V = ax * cy - ay * cx;
    float W = bx * ay - by * ax;
    if (U == 0.0f || V == 0.0f || W == 0.0f) {  // on an edge in float: decide it in double
        U = (float)((double)cx * (double)by - (double)cy * (double)bx);
        V = (float)((double)ax * (double)cy - (double)ay * (double)cx);
        W = (float)((double)bx * (double)ay - (double)by * (double)ax);
    }
    if ((U < 0.0f || V < 0.0f || W < 0.0f) && (U > 0.0f || V > 0.0f || W > 0.0f)) return false;
    float det = U + V + W;
    if (det == 0.0f) return false;
    float T = U * (r.sz * akz) + V * (r.sz * bkz) + W * (r.sz * ckz);
    float inv_det = 1.0f / det;
    float t = T * inv_det;
    if (!(t >= 0.0f) || !(t <= t_best) || !(t < INFINITY)) return false;
    t_hit = t;
    bary[0] = U * inv_det; bary[1] = V * inv_det; bary[2] = W * inv_det;
    return true;
}

}  // namespace pav
