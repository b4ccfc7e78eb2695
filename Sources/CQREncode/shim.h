// Umbrella header for libqrencode.
#ifndef MOAT_CQRENCODE_SHIM_H
#define MOAT_CQRENCODE_SHIM_H

#include <qrencode.h>

#endif
