"""The library level: a dynamic linker, a C library, call hooks, interposers and Win32 translation."""
