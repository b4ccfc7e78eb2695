#ifndef MOAT_CPOSTGRES_SHIM_H
#define MOAT_CPOSTGRES_SHIM_H

// libpq, PostgreSQL's C client (Debian: libpq-dev; pkg-config libpq).
#include <libpq-fe.h>

#endif
