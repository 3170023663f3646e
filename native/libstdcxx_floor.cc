// The prebuilt addons link the C++ runtime dynamically and must load with the libstdc++ of
// GCC 8 (RHEL 8, GLIBCXX_3.4.25). GCC 11 and later headers call std::__throw_bad_array_new_length
// from every allocator (an impossible element count), a function new in GLIBCXX_3.4.29. This
// file defines it in the addon, hidden, so the addon needs no libstdc++ newer than its floor.
// Linking libstdc++ statically would not do: its archive needs glibc 2.32 and later.
#include <new>

[[noreturn]] __attribute__((visibility("hidden"))) void ThrowBadArrayNewLength() __asm__(
    "_ZSt28__throw_bad_array_new_lengthv");

void ThrowBadArrayNewLength() { throw std::bad_array_new_length(); }
