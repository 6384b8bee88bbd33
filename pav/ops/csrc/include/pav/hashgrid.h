// Multiresolution hash-grid encoding: the per-point, per-level math.
//
// Every function here is PAV_HD and templated on the scalar type (float or double), so the
// CPU path (hashgrid.cpp) and the CUDA kernels (hashgrid_cuda.cu) run the very same code and the
// CPU tests check the GPU math. Conventions, shared with the pure-torch twin in pav/ops/hashgrid.py:
//   - points live in the unit box; each coordinate is clamped to [0, 1] first;
//   - at a level of `resolution` cells per side: p = x * resolution, cell = min(floor(p), resolution - 1),
//     frac = p - cell, so x = 1 falls in the last cell with frac = 1;
//   - corner c (0..7) takes bit 0 for +x, bit 1 for +y, bit 2 for +z;
//   - a dense level stores corner (x, y, z) at row x + y * side + z * side^2 with side = resolution + 1;
//     a hashed level at row (x ^ y * 2654435761 ^ z * 805459861) mod 2^log2_hashmap_size (uint32 arithmetic);
//   - the row is relative to the level's offset into one flat table of n_features columns;
//   - d frac / d x = resolution inside [0, 1] (both ends included, as torch.clamp's gradient) and 0 outside.
#pragma once

#include <cstdint>

#include "pav/common.h"

namespace pav {
namespace hashgrid {

constexpr int kMaxLevels = 32;
constexpr int kCorners = 8;
constexpr int kMaxLog2HashmapSize = 30;  // dense and hashed rows stay below 2^30, so uint32 row math is exact
constexpr uint32_t kPrimeY = 2654435761u;
constexpr uint32_t kPrimeZ = 805459861u;

// One level of the grid: what the per-point math needs to know about it.
struct Level {
    uint32_t resolution;  // cells per side
    uint32_t row_mask;    // 2^log2_hashmap_size - 1, used by hashed levels
    int64_t offset;       // first row of this level in the flat table
    bool dense;           // one row per grid vertex, no hashing
};

// All levels, small enough to pass by value as a kernel argument.
struct Levels {
    int count;
    Level level[kMaxLevels];
};

// A level is dense when all its (resolution + 1)^3 vertices fit in 2^log2_hashmap_size rows.
PAV_HD bool level_is_dense(int64_t resolution, int log2_hashmap_size) {
    const int64_t side = resolution + 1;
    if (side > 2048) return false;  // side^3 > 2^33 > any table; also keeps side^3 from overflowing
    return side * side * side <= (int64_t(1) << log2_hashmap_size);
}

// Rows a level occupies: its vertex count rounded up to a multiple of 8 when dense, else 2^log2.
PAV_HD int64_t level_rows(int64_t resolution, int log2_hashmap_size) {
    if (!level_is_dense(resolution, log2_hashmap_size)) return int64_t(1) << log2_hashmap_size;
    const int64_t side = resolution + 1;
    return (side * side * side + 7) / 8 * 8;
}

PAV_HD Level make_level(int64_t resolution, int64_t offset, int log2_hashmap_size) {
    Level level;
    level.resolution = uint32_t(resolution);
    level.row_mask = uint32_t((int64_t(1) << log2_hashmap_size) - 1);
    level.offset = offset;
    level.dense = level_is_dense(resolution, log2_hashmap_size);
    return level;
}

// Rows within the level of the 8 corners of `cell`: corner c is vertex cell + (c & 1, c >> 1 & 1, c >> 2 & 1).
// Dense: x + y * side + z * side^2. Hashed: (x ^ y * kPrimeY ^ z * kPrimeZ) & row_mask in uint32 arithmetic
// ((y + 1) * P is y * P + P modulo 2^32, so each product is computed once).
PAV_HD void corner_rows(const Level& level, const uint32_t cell[3], uint32_t rows[kCorners]) {
    if (level.dense) {
        const uint32_t side = level.resolution + 1;
        const uint32_t base = cell[0] + side * (cell[1] + side * cell[2]);
        for (int corner = 0; corner < kCorners; ++corner) {
            const uint32_t step_y = (corner & 2) ? side : 0u, step_z = (corner & 4) ? side * side : 0u;
            rows[corner] = base + uint32_t(corner & 1) + step_y + step_z;
        }
    } else {
        const uint32_t y0 = cell[1] * kPrimeY, y1 = y0 + kPrimeY;
        const uint32_t z0 = cell[2] * kPrimeZ, z1 = z0 + kPrimeZ;
        for (int corner = 0; corner < kCorners; ++corner) {
            const uint32_t x = cell[0] + uint32_t(corner & 1);
            rows[corner] = (x ^ ((corner & 2) ? y1 : y0) ^ ((corner & 4) ? z1 : z0)) & level.row_mask;
        }
    }
}

// Where one point falls in one level: the 8 corner rows, the position inside the cell and its
// derivative with respect to the point.
template <typename T>
struct Sample {
    int64_t offset;           // the level's first row in the flat table
    uint32_t rows[kCorners];  // corner rows within the level
    T frac[3];                // [3] position inside the cell, in [0, 1]
    T dfrac_dx[3];            // [3] resolution where the clamp passes the gradient, else 0
};

template <typename T>
PAV_HD Sample<T> sample_level(const T* point, const Level& level) {
    Sample<T> sample;
    sample.offset = level.offset;
    const T resolution = T(level.resolution);
    const T last_cell = T(level.resolution - 1);
    uint32_t cell[3];
    for (int axis = 0; axis < 3; ++axis) {
        const T x = point[axis];
        const T p = (x < T(0) ? T(0) : (x > T(1) ? T(1) : x)) * resolution;
        // p >= 0, so floor is truncation (no libm call). A NaN fails the comparison and lands in the
        // last cell: a valid row, a NaN output.
        cell[axis] = uint32_t(p < last_cell ? p : last_cell);
        sample.frac[axis] = p - T(cell[axis]);
        sample.dfrac_dx[axis] = (x >= T(0) && x <= T(1)) ? resolution : T(0);
    }
    corner_rows(level, cell, sample.rows);
    return sample;
}

// Where the n_features values of a corner start in a flat [n_params, n_features] array.
template <typename T>
PAV_HD int64_t corner_index(const Sample<T>& sample, int n_features, int corner) {
    return (sample.offset + int64_t(sample.rows[corner])) * n_features;
}

// Trilinear weight of each corner: the product over axes of frac (upper corner) or 1 - frac.
template <typename T>
PAV_HD void corner_weights(const Sample<T>& sample, T weights[kCorners]) {
    const T lower[3] = {T(1) - sample.frac[0], T(1) - sample.frac[1], T(1) - sample.frac[2]};
    for (int corner = 0; corner < kCorners; ++corner) {
        const T wx = (corner & 1) ? sample.frac[0] : lower[0];
        const T wy = (corner & 2) ? sample.frac[1] : lower[1];
        const T wz = (corner & 4) ? sample.frac[2] : lower[2];
        weights[corner] = wx * wy * wz;
    }
}

// Forward: out[f] = sum over corners of weight * table[row, f], for the n_features of this level.
template <typename T>
PAV_HD void interpolate(const Sample<T>& sample, const T* table, int n_features, T* out) {
    T weights[kCorners];
    corner_weights(sample, weights);
    for (int f = 0; f < n_features; ++f) {
        T value = T(0);
        for (int corner = 0; corner < kCorners; ++corner) {
            value += weights[corner] * table[corner_index(sample, n_features, corner) + f];
        }
        out[f] = value;
    }
}

// Backward to the table: grad_table[row, f] += weight * grad_out[f] for every corner. `add(dst, value)`
// is a plain add on the CPU (each level's rows belong to one thread) and atomicAdd on the GPU.
template <typename T, typename Add>
PAV_HD void scatter_to_table(const Sample<T>& sample, const T* grad_out, int n_features, T* grad_table, Add add) {
    T weights[kCorners];
    corner_weights(sample, weights);
    for (int corner = 0; corner < kCorners; ++corner) {
        T* row = grad_table + corner_index(sample, n_features, corner);
        for (int f = 0; f < n_features; ++f) add(row + f, weights[corner] * grad_out[f]);
    }
}

// Backward to the point: d loss / d x for this level, written to grad_point[3].
template <typename T>
PAV_HD void point_gradient(const Sample<T>& sample, const T* table, const T* grad_out, int n_features,
                           T grad_point[3]) {
    const T* frac = sample.frac;
    const T lower[3] = {T(1) - frac[0], T(1) - frac[1], T(1) - frac[2]};
    T grad_frac[3] = {T(0), T(0), T(0)};
    for (int corner = 0; corner < kCorners; ++corner) {
        const T* row = table + corner_index(sample, n_features, corner);
        T value = T(0);  // grad_out . table[row]
        for (int f = 0; f < n_features; ++f) value += grad_out[f] * row[f];
        const T wx = (corner & 1) ? frac[0] : lower[0];
        const T wy = (corner & 2) ? frac[1] : lower[1];
        const T wz = (corner & 4) ? frac[2] : lower[2];
        // d weight / d frac_axis: the other two factors, signed by the side of the corner.
        grad_frac[0] += ((corner & 1) ? value : -value) * wy * wz;
        grad_frac[1] += ((corner & 2) ? value : -value) * wx * wz;
        grad_frac[2] += ((corner & 4) ? value : -value) * wx * wy;
    }
    for (int axis = 0; axis < 3; ++axis) grad_point[axis] = grad_frac[axis] * sample.dfrac_dx[axis];
}

}  // namespace hashgrid
}  // namespace pav
