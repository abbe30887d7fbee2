# blocks/*.cu -> C++ for the CUDA emulator (tests/cuda_emu/cuda_emu.h): kernel
# launches become emu_launch calls, dynamic shared memory a pointer into the
# launch's buffer. Each launch is on one line in our sources.
1i #include "tests/cuda_emu/cuda_emu.h"
s/([A-Za-z_][A-Za-z0-9_]*(<[^<>]*>)?)<<<([^>]*)>>>\(/emu_launch(\3, \1, /g
s/extern __shared__ ([A-Za-z0-9_]+) ([A-Za-z0-9_]+)\[\];/\1 *\2 = reinterpret_cast<\1 *>(emu_dynamic_shared);/
