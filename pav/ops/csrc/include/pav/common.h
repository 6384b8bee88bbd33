// Shared by the CPU (OpenMP) and CUDA paths: every function here is __host__ __device__,
// so the CPU tests run the very code the GPU kernels run.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define PAV_HD __host__ __device__ __forceinline__
#else
#define PAV_HD inline
#endif

namespace pav {

struct Vec3 {
    float x, y, z;
};

PAV_HD Vec3 make_vec3(float x, float y, float z) { return Vec3{x, y, z}; }
PAV_HD Vec3 load_vec3(const float* p) { return Vec3{p[0], p[1], p[2]}; }
PAV_HD void store_vec3(float* p, Vec3 v) { p[0] = v.x; p[1] = v.y; p[2] = v.z; }

PAV_HD Vec3 operator+(Vec3 a, Vec3 b) { return Vec3{a.x + b.x, a.y + b.y, a.z + b.z}; }
PAV_HD Vec3 operator-(Vec3 a, Vec3 b) { return Vec3{a.x - b.x, a.y - b.y, a.z - b.z}; }
PAV_HD Vec3 operator*(Vec3 a, float s) { return Vec3{a.x * s, a.y * s, a.z * s}; }
PAV_HD Vec3 operator*(float s, Vec3 a) { return Vec3{a.x * s, a.y * s, a.z * s}; }
PAV_HD float dot(Vec3 a, Vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
PAV_HD Vec3 cross(Vec3 a, Vec3 b) {
    return Vec3{a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}
PAV_HD float fmin_(float a, float b) { return a < b ? a : b; }
PAV_HD float fmax_(float a, float b) { return a > b ? a : b; }
PAV_HD Vec3 vmin(Vec3 a, Vec3 b) { return Vec3{fmin_(a.x, b.x), fmin_(a.y, b.y), fmin_(a.z, b.z)}; }
PAV_HD Vec3 vmax(Vec3 a, Vec3 b) { return Vec3{fmax_(a.x, b.x), fmax_(a.y, b.y), fmax_(a.z, b.z)}; }
PAV_HD float get(Vec3 v, int axis) { return axis == 0 ? v.x : (axis == 1 ? v.y : v.z); }

}  // namespace pav
