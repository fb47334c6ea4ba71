/* arc4random for the portable executables (engine_portable() in CMakeLists.txt): GCC 12's static
 * libstdc++, built against glibc 2.36, calls arc4random (GLIBC_2.36) in std::random_device, which
 * would make every executable that links it need glibc 2.36 and so fail to start on Ubuntu 22.04
 * (glibc 2.35). A definition in the executable satisfies that reference at link time, so no
 * versioned import is left (tools/check_glibc.sh checks the result). Same contract as glibc's:
 * 32 random bits from the kernel's generator (getrandom, glibc 2.25), retried on interruption. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>

uint32_t arc4random(void) {
  uint32_t v = 0;
  for (;;) {
    const ssize_t n = getrandom(&v, sizeof v, 0);
    if (n == (ssize_t)sizeof v) return v;
    if (n < 0 && errno != EINTR) abort(); /* as glibc: no source of randomness is fatal */
  }
}
