// Umbrella header for the parts of OpenSSL 3 libcrypto that MoatCrypto uses.
//
// Everything deprecated in OpenSSL 3.0 (SHA256_Init, HMAC_CTX, ...) is hidden,
// so an accidental use is a compile error rather than a deprecation warning.
#ifndef MOAT_COPENSSL_SHIM_H
#define MOAT_COPENSSL_SHIM_H

#ifndef OPENSSL_API_COMPAT
#define OPENSSL_API_COMPAT 30000
#endif
#ifndef OPENSSL_NO_DEPRECATED
#define OPENSSL_NO_DEPRECATED
#endif

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/err.h>

#endif
