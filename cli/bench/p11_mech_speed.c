/*
 * p11_mech_speed: sign/verify speed of one PKCS#11 mechanism given by number, for the
 * mechanisms `klyuch bench` cannot name through the `cryptoki` crate (cryptoki 0.12 has no
 * MechanismType for CKM_GOSTR3410 = 0x1201 and refuses numbers below CKM_VENDOR_DEFINED).
 * `klyuch bench` compiles it at run time:
 *     cc -O2 -I/usr/include/p11-kit-1 -o p11_mech_speed p11_mech_speed.c -ldl
 *
 * usage: p11_mech_speed MODULE.so TOKEN_LABEL USER_PIN
 * It loads the module, opens a session on the token with that label and logs in, then answers
 * commands on stdin, one per line, one answer line each:
 *
 *   rate sign|verify MECH_HEX KEY_ID_HEX DATA_LEN SECONDS
 *       -> "rate OPS_PER_SECOND COUNT SECONDS" or "error TEXT"
 *
 * A sign operation is what an application (and the cryptoki crate) does: C_SignInit, C_Sign for
 * the length, C_Sign; a verify operation is C_VerifyInit + C_Verify. The key is the private
 * (sign) or public (verify) key with that CKA_ID. The module's environment is the caller's.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;
static CK_SESSION_HANDLE sess;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int unhex(const char *s, unsigned char *out, size_t max, size_t *n) {
    size_t len = strlen(s);
    if (len % 2 || len / 2 > max) return 0;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned int b;
        if (sscanf(s + 2 * i, "%2x", &b) != 1) return 0;
        out[i] = (unsigned char)b;
    }
    *n = len / 2;
    return 1;
}

static CK_RV find_key(CK_OBJECT_CLASS cls, unsigned char *id, size_t idlen, CK_OBJECT_HANDLE *h) {
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, id, idlen}};
    CK_ULONG n = 0;
    CK_RV rv = f->C_FindObjectsInit(sess, t, 2);
    if (rv != CKR_OK) return rv;
    rv = f->C_FindObjects(sess, h, 1, &n);
    f->C_FindObjectsFinal(sess);
    if (rv == CKR_OK && n != 1) rv = CKR_KEY_HANDLE_INVALID;
    return rv;
}

static CK_RV sign_once(CK_MECHANISM *m, CK_OBJECT_HANDLE key, unsigned char *data, size_t len,
                       unsigned char *sig, CK_ULONG *siglen) {
    CK_RV rv = f->C_SignInit(sess, m, key);
    if (rv != CKR_OK) return rv;
    CK_ULONG need = 0;
    rv = f->C_Sign(sess, data, len, NULL, &need);
    if (rv != CKR_OK) return rv;
    if (need > *siglen) return CKR_BUFFER_TOO_SMALL;
    *siglen = need;
    return f->C_Sign(sess, data, len, sig, siglen);
}

static void rate(char *op, char *mech_hex, char *id_hex, size_t len, double secs) {
    unsigned char id[256], sig[1024], *data = malloc(len ? len : 1);
    size_t idlen;
    CK_ULONG siglen = sizeof sig;
    CK_OBJECT_HANDLE priv, pub;
    CK_MECHANISM m = {strtoul(mech_hex, NULL, 16), NULL, 0};
    int verify = !strcmp(op, "verify");
    CK_RV rv;
    if (!data || !unhex(id_hex, id, sizeof id, &idlen)) {
        printf("error bad arguments\n");
        free(data);
        return;
    }
    for (size_t i = 0; i < len; i++) data[i] = (unsigned char)(i + 1);
    if ((rv = find_key(CKO_PRIVATE_KEY, id, idlen, &priv)) != CKR_OK ||
        (verify && (rv = find_key(CKO_PUBLIC_KEY, id, idlen, &pub)) != CKR_OK)) {
        printf("error key not found (CKR 0x%lx)\n", (unsigned long)rv);
        free(data);
        return;
    }
    /* One signature: the warm-up, and the signature that verify checks. */
    if ((rv = sign_once(&m, priv, data, len, sig, &siglen)) != CKR_OK) {
        printf("error C_Sign: CKR 0x%lx\n", (unsigned long)rv);
        free(data);
        return;
    }
    long count = 0;
    double start = now(), t;
    do {
        if (verify) {
            rv = f->C_VerifyInit(sess, &m, pub);
            if (rv == CKR_OK) rv = f->C_Verify(sess, data, len, sig, siglen);
        } else {
            CK_ULONG l = sizeof sig;
            rv = sign_once(&m, priv, data, len, sig, &l);
        }
        if (rv != CKR_OK) {
            printf("error %s: CKR 0x%lx\n", verify ? "C_Verify" : "C_Sign", (unsigned long)rv);
            free(data);
            return;
        }
        count++;
        t = now() - start;
    } while (t < secs);
    printf("rate %.3f %ld %.6f\n", (double)count / t, count, t);
    free(data);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 4) {
        printf("error usage: p11_mech_speed MODULE.so TOKEN_LABEL USER_PIN\n");
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CK_C_GetFunctionList gfl = lib ? (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList") : NULL;
    CK_C_INITIALIZE_ARGS args = {NULL, NULL, NULL, NULL, CKF_OS_LOCKING_OK, NULL};
    if (!gfl || gfl(&f) != CKR_OK || f->C_Initialize(&args) != CKR_OK) {
        printf("error cannot load %s\n", argv[1]);
        return 1;
    }
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    int found = 0;
    if (f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK) n = 0;
    for (CK_ULONG i = 0; i < n && !found; i++) {
        CK_TOKEN_INFO ti;
        char label[33];
        if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK) continue;
        memcpy(label, ti.label, 32);
        label[32] = 0;
        for (int j = 31; j >= 0 && label[j] == ' '; j--) label[j] = 0;
        if (!strcmp(label, argv[2]) &&
            f->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &sess) ==
                CKR_OK &&
            f->C_Login(sess, CKU_USER, (unsigned char *)argv[3], strlen(argv[3])) == CKR_OK)
            found = 1;
    }
    if (!found) {
        printf("error no token labelled %s to log in to\n", argv[2]);
        return 1;
    }
    printf("ready\n");
    char line[512], op[16], mech[32], id[256];
    unsigned long len;
    double secs;
    while (fgets(line, sizeof line, stdin)) {
        if (sscanf(line, "rate %15s %31s %255s %lu %lf", op, mech, id, &len, &secs) == 5 &&
            (!strcmp(op, "sign") || !strcmp(op, "verify")) && len <= (1UL << 20))
            rate(op, mech, id, (size_t)len, secs);
        else if (!strncmp(line, "quit", 4))
            break;
        else
            printf("error bad command\n");
    }
    f->C_Finalize(NULL);
    return 0;
}
