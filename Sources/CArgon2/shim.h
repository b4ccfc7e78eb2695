// Umbrella header for the reference Argon2 library (libargon2).
#ifndef MOAT_CARGON2_SHIM_H
#define MOAT_CARGON2_SHIM_H

#include <argon2.h>

#endif
