// errno values by their symbolic names ("ENOENT"), for the error codes JavaScript sees.
#pragma once

#include <string>

namespace zerocopy {

// The macro's name for a Linux errno value; "E<number>" for one the table does not know.
// glibc's strerrorname_np gives the same names but needs glibc 2.32, above the prebuilds' floor.
std::string ErrnoToName(int err);

}  // namespace zerocopy
