/*
 * gost_engine_speed: OpenSSL's GOST engine (Debian libengine-gost-openssl) measured for
 * `klyuch bench`, which compiles this file at run time with
 *     cc -O2 -o gost_engine_speed gost_engine_speed.c -lcrypto
 * (`openssl speed` does not time engine signatures).
 *
 * It loads the "gost" engine, generates one gost2012_256 key (TC26 parameter set A,
 * id-tc26-gost-3410-12-256-paramSetA, the engine's "TCA") and one gost2012_512 key (TC26
 * parameter set A), then answers commands on stdin, one per line, one answer line each:
 *
 *   keys                          -> "key BITS OID D PUB" per key, then "ok": D is the private
 *                                    scalar little-endian, PUB is X||Y little-endian (hex), as
 *                                    PKCS#11 CKA_VALUE holds them; OID the curve's OID
 *   rate OP BITS SECONDS [LEN]    -> "rate OPS_PER_SECOND COUNT SECONDS" or "error TEXT"
 *
 * OP: sign     EVP_PKEY_sign on a BITS/8-byte digest (what CKM_GOSTR3410[_512] does)
 *     verify   EVP_PKEY_verify of such a signature
 *     dsign    EVP_DigestSignInit + EVP_DigestSign of a LEN-byte message with Streebog-BITS
 *              (what CKM_GOSTR3410_WITH_GOSTR3411_12_BITS does: init + one-shot sign)
 *     dverify  EVP_DigestVerifyInit + EVP_DigestVerify of that signature
 *     digest   EVP_Digest (Streebog-BITS) of LEN bytes
 *
 * Each rate runs the operation once untimed, then in a loop until SECONDS have passed (at least
 * once), and prints completed operations per second. One thread.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LEN (1 << 20)

struct key {
    int bits;
    EVP_PKEY *pkey;
    const EVP_MD *md;
    EVP_PKEY_CTX *sctx, *vctx;
    unsigned char digest[64];
    unsigned char sig[128];
    size_t siglen;
};

static ENGINE *eng;
static unsigned char *msg;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void hex(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
}

static int make_key(struct key *k, const char *alg, const char *paramset, int bits,
                    const char *mdname) {
    k->bits = bits;
    int nid = OBJ_txt2nid(alg);
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_id(nid, eng);
    if (!kctx || EVP_PKEY_keygen_init(kctx) != 1 ||
        EVP_PKEY_CTX_ctrl_str(kctx, "paramset", paramset) <= 0 ||
        EVP_PKEY_keygen(kctx, &k->pkey) != 1)
        return 0;
    EVP_PKEY_CTX_free(kctx);
    k->md = EVP_get_digestbyname(mdname);
    if (!k->md) return 0;
    for (int i = 0; i < bits / 8; i++) k->digest[i] = (unsigned char)(i + 1);
    k->sctx = EVP_PKEY_CTX_new(k->pkey, eng);
    k->vctx = EVP_PKEY_CTX_new(k->pkey, eng);
    if (!k->sctx || !k->vctx || EVP_PKEY_sign_init(k->sctx) != 1 ||
        EVP_PKEY_verify_init(k->vctx) != 1)
        return 0;
    k->siglen = sizeof k->sig;
    return EVP_PKEY_sign(k->sctx, k->sig, &k->siglen, k->digest, (size_t)bits / 8) == 1;
}

static int print_key(struct key *k) {
    const EC_KEY *ec = EVP_PKEY_get0(k->pkey);
    if (!ec) return 0;
    const EC_GROUP *g = EC_KEY_get0_group(ec);
    const BIGNUM *d = EC_KEY_get0_private_key(ec);
    const EC_POINT *p = EC_KEY_get0_public_key(ec);
    BIGNUM *x = BN_new(), *y = BN_new();
    size_t n = (size_t)k->bits / 8;
    unsigned char buf[64];
    char oid[128];
    if (!g || !d || !p || !x || !y || !EC_POINT_get_affine_coordinates(g, p, x, y, NULL))
        return 0;
    if (OBJ_obj2txt(oid, sizeof oid, OBJ_nid2obj(EC_GROUP_get_curve_name(g)), 1) <= 0) return 0;
    printf("key %d %s ", k->bits, oid);
    if (BN_bn2lebinpad(d, buf, (int)n) < 0) return 0;
    hex(buf, n);
    printf(" ");
    if (BN_bn2lebinpad(x, buf, (int)n) < 0) return 0;
    hex(buf, n);
    if (BN_bn2lebinpad(y, buf, (int)n) < 0) return 0;
    hex(buf, n);
    printf("\n");
    BN_free(x);
    BN_free(y);
    return 1;
}

/* One operation; 1 = done. */
static int op_once(const char *op, struct key *k, size_t len, unsigned char *sigbuf,
                   size_t *siglen, EVP_MD_CTX *mctx) {
    size_t n = (size_t)k->bits / 8;
    if (!strcmp(op, "sign")) {
        *siglen = 128;
        return EVP_PKEY_sign(k->sctx, sigbuf, siglen, k->digest, n) == 1;
    }
    if (!strcmp(op, "verify"))
        return EVP_PKEY_verify(k->vctx, k->sig, k->siglen, k->digest, n) == 1;
    if (!strcmp(op, "dsign")) {
        *siglen = 128;
        return EVP_MD_CTX_reset(mctx) == 1 &&
               EVP_DigestSignInit(mctx, NULL, k->md, eng, k->pkey) == 1 &&
               EVP_DigestSign(mctx, sigbuf, siglen, msg, len) == 1;
    }
    if (!strcmp(op, "dverify"))
        return EVP_MD_CTX_reset(mctx) == 1 &&
               EVP_DigestVerifyInit(mctx, NULL, k->md, eng, k->pkey) == 1 &&
               EVP_DigestVerify(mctx, sigbuf, *siglen, msg, len) == 1;
    if (!strcmp(op, "digest")) {
        unsigned char out[64];
        unsigned int outlen = sizeof out;
        return EVP_Digest(msg, len, out, &outlen, k->md, NULL) == 1;
    }
    return 0;
}

static void rate(const char *op, struct key *k, double secs, size_t len) {
    unsigned char sigbuf[128];
    size_t siglen = sizeof sigbuf;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    if (!strcmp(op, "dverify")) {
        /* The message signature to verify. */
        if (!op_once("dsign", k, len, sigbuf, &siglen, mctx)) {
            printf("error dsign failed\n");
            EVP_MD_CTX_free(mctx);
            return;
        }
    }
    size_t keep = siglen;
    if (!op_once(op, k, len, sigbuf, &siglen, mctx)) {
        printf("error %s failed\n", op);
        EVP_MD_CTX_free(mctx);
        return;
    }
    long count = 0;
    double start = now(), t;
    do {
        if (!strcmp(op, "dverify")) siglen = keep;
        if (!op_once(op, k, len, sigbuf, &siglen, mctx)) {
            printf("error %s failed\n", op);
            EVP_MD_CTX_free(mctx);
            return;
        }
        count++;
        t = now() - start;
    } while (t < secs);
    printf("rate %.3f %ld %.6f\n", (double)count / t, count, t);
    EVP_MD_CTX_free(mctx);
}

int main(void) {
    struct key k256, k512;
    char line[256], op[32];
    setvbuf(stdout, NULL, _IOLBF, 0);
    msg = malloc(MAX_LEN);
    if (!msg) return 1;
    for (size_t i = 0; i < MAX_LEN; i++) msg[i] = (unsigned char)(i * 31 + 7);
    eng = ENGINE_by_id("gost");
    if (!eng || ENGINE_init(eng) != 1 || ENGINE_set_default(eng, ENGINE_METHOD_ALL) != 1) {
        printf("error the OpenSSL GOST engine is not available (Debian: libengine-gost-openssl)\n");
        return 1;
    }
    if (!make_key(&k256, "gost2012_256", "TCA", 256, "md_gost12_256") ||
        !make_key(&k512, "gost2012_512", "A", 512, "md_gost12_512")) {
        printf("error key generation with the GOST engine failed\n");
        ERR_print_errors_fp(stderr);
        return 1;
    }
    printf("ready\n");
    while (fgets(line, sizeof line, stdin)) {
        int bits = 0;
        double secs = 0;
        unsigned long len = 64;
        if (!strncmp(line, "keys", 4)) {
            if (!print_key(&k256) || !print_key(&k512))
                printf("error cannot export the engine's keys\n");
            else
                printf("ok\n");
        } else if (sscanf(line, "rate %31s %d %lf %lu", op, &bits, &secs, &len) >= 3 &&
                   (bits == 256 || bits == 512) && len <= MAX_LEN) {
            rate(op, bits == 256 ? &k256 : &k512, secs, (size_t)len);
        } else if (!strncmp(line, "quit", 4)) {
            break;
        } else {
            printf("error bad command\n");
        }
    }
    return 0;
}
