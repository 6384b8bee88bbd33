// The extension's own CPU thread count, shared by every OpenMP loop in pav._C.
#pragma once

namespace pav {

// Threads for the extension's OpenMP loops: the count pav._C.set_num_threads gave, else torch's
// at::get_num_threads(). Every parallel region passes it explicitly (num_threads), so it holds even where
// the extension links another libgomp than torch's, and in any calling thread.
int cpu_threads();

}  // namespace pav
