/*
 * abi_check: drives libklyuch_pkcs11.so through its raw C interface, the way a C application
 * does, and checks what the Rust `cryptoki` crate cannot reach: NULL pointers and lengths at
 * every entry point, the output-buffer contract with guard bytes around short buffers, the
 * function lists and interfaces, application mutex callbacks, CKF_LIBRARY_CANT_CREATE_OS_THREADS,
 * fork() and threads.
 *
 * usage: abi_check MODULE.so TEST
 *   TEST: interfaces | uninit | args | buffers | mutexes | nothreads | fork | threads
 * The module's environment (KLYUCH_TOKEN_DIR, KLYUCH_CONF, KLYUCH_PCSC=0) is set by the caller,
 * which also provides an initialised token: SO PIN 12345678, user PIN 1234.
 * Exit status 0 = pass; any failure prints "FAIL: ..." and exits 1.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

/* PKCS#11 3.0 additions not in the 2.40 header (PKCS#11 3.0 base spec §3.6, §5.4). */
typedef struct CK_INTERFACE {
    CK_UTF8CHAR *pInterfaceName;
    void *pFunctionList;
    CK_FLAGS flags;
} CK_INTERFACE;
typedef CK_RV (*GetInterfaceList_t)(CK_INTERFACE *, CK_ULONG *);
typedef CK_RV (*GetInterface_t)(CK_UTF8CHAR *, CK_VERSION *, CK_INTERFACE **, CK_FLAGS);
typedef struct FUNCTION_LIST_3_0 {
    CK_FUNCTION_LIST v2; /* the 2.40 list is a prefix of the 3.0 list */
    GetInterfaceList_t C_GetInterfaceList;
    GetInterface_t C_GetInterface;
    CK_RV (*C_LoginUser)(CK_SESSION_HANDLE, CK_USER_TYPE, CK_UTF8CHAR *, CK_ULONG, CK_UTF8CHAR *, CK_ULONG);
    CK_RV (*C_SessionCancel)(CK_SESSION_HANDLE, CK_FLAGS);
    void *message_functions[20];
} FUNCTION_LIST_3_0;

#define CKF_FIND_OBJECTS 0x40UL /* PKCS#11 3.0 §5.6 C_SessionCancel */

static CK_FUNCTION_LIST *f;
static void *lib;
static const char *current = "";

static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL [%s]: ", current);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

#define EXPECT(call, want)                                                                         \
    do {                                                                                           \
        CK_RV rv_ = (call);                                                                        \
        if (rv_ != (CK_RV)(want))                                                                  \
            fail("%s:%d: %s returned 0x%lx, expected 0x%lx (%s)", __FILE__, __LINE__, #call,      \
                 (unsigned long)rv_, (unsigned long)(want), #want);                                \
    } while (0)
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail(__VA_ARGS__);                                                                     \
    } while (0)

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

static CK_SLOT_ID token_slot(void) {
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    EXPECT(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        EXPECT(f->C_GetTokenInfo(slots[i], &ti), CKR_OK);
        if (ti.flags & CKF_USER_PIN_INITIALIZED)
            return slots[i];
    }
    fail("no initialised token with a user PIN");
    return 0;
}

static CK_SESSION_HANDLE login(CK_SLOT_ID slot) {
    CK_SESSION_HANDLE s;
    EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK);
    CK_RV rv = f->C_Login(s, CKU_USER, (CK_UTF8CHAR *)"1234", 4);
    CHECK(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN, "login: 0x%lx", rv);
    return s;
}

static void init_default(void) { EXPECT(f->C_Initialize(NULL), CKR_OK); }

/* ------------------------------------------------------------------ interfaces */
static void test_interfaces(void) {
    GetInterfaceList_t gil = (GetInterfaceList_t)dlsym(lib, "C_GetInterfaceList");
    GetInterface_t gi = (GetInterface_t)dlsym(lib, "C_GetInterface");
    CHECK(gil && gi, "C_GetInterfaceList / C_GetInterface are not exported");
    CK_ULONG n = 0;
    EXPECT(gil(NULL, &n), CKR_OK);
    CHECK(n == 2, "expected 2 interfaces, got %lu", n);
    CK_INTERFACE list[2];
    CK_ULONG small = 1;
    EXPECT(gil(list, &small), CKR_BUFFER_TOO_SMALL);
    CHECK(small == 2, "count after BUFFER_TOO_SMALL");
    EXPECT(gil(list, &n), CKR_OK);
    EXPECT(gil(list, NULL), CKR_ARGUMENTS_BAD);
    int have30 = 0, have240 = 0;
    for (int i = 0; i < 2; i++) {
        CHECK(strcmp((char *)list[i].pInterfaceName, "PKCS 11") == 0, "interface name");
        CK_VERSION *v = (CK_VERSION *)list[i].pFunctionList;
        if (v->major == 3 && v->minor == 0) {
            have30 = 1;
            FUNCTION_LIST_3_0 *l3 = list[i].pFunctionList;
            CHECK(l3->C_LoginUser && l3->C_SessionCancel && l3->C_GetInterface, "3.0 functions");
            for (int j = 0; j < 20; j++)
                CHECK(l3->message_functions[j], "message function %d missing", j);
        }
        if (v->major == 2 && v->minor == 40)
            have240 = 1;
    }
    CHECK(have30 && have240, "interfaces 3.0 and 2.40");
    CK_INTERFACE *def = NULL;
    EXPECT(gi(NULL, NULL, &def, 0), CKR_OK);
    CHECK(((CK_VERSION *)def->pFunctionList)->major == 3, "default interface is 3.0");
    CK_VERSION v240 = {2, 40};
    EXPECT(gi((CK_UTF8CHAR *)"PKCS 11", &v240, &def, 0), CKR_OK);
    CHECK(((CK_VERSION *)def->pFunctionList)->minor == 40, "2.40 on request");
    EXPECT(gi((CK_UTF8CHAR *)"Vendor X", NULL, &def, 0), CKR_ARGUMENTS_BAD);
    EXPECT(gi(NULL, NULL, NULL, 0), CKR_ARGUMENTS_BAD);
    CK_FUNCTION_LIST *fl = NULL;
    CK_RV (*gfl)(CK_FUNCTION_LIST **) = (CK_RV(*)(CK_FUNCTION_LIST **))dlsym(lib, "C_GetFunctionList");
    EXPECT(gfl(NULL), CKR_ARGUMENTS_BAD);
    EXPECT(gfl(&fl), CKR_OK);
    CHECK(fl->version.major == 2 && fl->version.minor == 40, "C_GetFunctionList gives 2.40");
    /* All 68 entries present. */
    void **p = (void **)((char *)fl + sizeof(CK_VERSION) + (sizeof(void *) - sizeof(CK_VERSION) % sizeof(void *)) % sizeof(void *));
    for (int i = 0; i < 68; i++)
        CHECK(p[i] != NULL, "function list entry %d is NULL", i);
    init_default();
    CK_INFO info;
    EXPECT(f->C_GetInfo(&info), CKR_OK);
    CHECK(info.cryptokiVersion.major == 2 && info.cryptokiVersion.minor == 40, "C_GetInfo of the 2.40 list");
    FUNCTION_LIST_3_0 *l3 = NULL;
    EXPECT(gi(NULL, NULL, &def, 0), CKR_OK);
    l3 = def->pFunctionList;
    EXPECT(l3->v2.C_GetInfo(&info), CKR_OK);
    CHECK(info.cryptokiVersion.major == 3 && info.cryptokiVersion.minor == 0, "C_GetInfo of the 3.0 list");
    CK_SESSION_HANDLE s = login(token_slot());
    EXPECT(l3->C_SessionCancel(s, CKF_SIGN | CKF_FIND_OBJECTS), CKR_OK);
    EXPECT(f->C_Logout(s), CKR_OK);
    EXPECT(l3->C_LoginUser(s, CKU_USER, (CK_UTF8CHAR *)"1234", 4, NULL, 0), CKR_OK);
    EXPECT(f->C_Finalize(NULL), CKR_OK);
}

/* ------------------------------------------------------------------ before C_Initialize */
static void test_uninit(void) {
    CK_ULONG n = 0;
    CK_SLOT_ID slot = 0;
    CK_SESSION_HANDLE s = 1;
    CK_INFO info;
    CK_BYTE buf[16];
    CK_MECHANISM m = {CKM_SHA256, NULL, 0};
    const CK_RV NI = CKR_CRYPTOKI_NOT_INITIALIZED;
    EXPECT(f->C_Finalize(NULL), NI);
    EXPECT(f->C_GetInfo(&info), NI);
    EXPECT(f->C_GetSlotList(CK_FALSE, NULL, &n), NI);
    EXPECT(f->C_GetSlotInfo(slot, NULL), NI);
    EXPECT(f->C_GetTokenInfo(slot, NULL), NI);
    EXPECT(f->C_GetMechanismList(slot, NULL, &n), NI);
    EXPECT(f->C_GetMechanismInfo(slot, CKM_SHA256, NULL), NI);
    EXPECT(f->C_InitToken(slot, NULL, 0, NULL), NI);
    EXPECT(f->C_InitPIN(s, NULL, 0), NI);
    EXPECT(f->C_SetPIN(s, NULL, 0, NULL, 0), NI);
    EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s), NI);
    EXPECT(f->C_CloseSession(s), NI);
    EXPECT(f->C_CloseAllSessions(slot), NI);
    EXPECT(f->C_GetSessionInfo(s, NULL), NI);
    EXPECT(f->C_GetOperationState(s, NULL, &n), NI);
    EXPECT(f->C_SetOperationState(s, buf, 1, 0, 0), NI);
    EXPECT(f->C_Login(s, CKU_USER, NULL, 0), NI);
    EXPECT(f->C_Logout(s), NI);
    EXPECT(f->C_CreateObject(s, NULL, 0, NULL), NI);
    EXPECT(f->C_CopyObject(s, 1, NULL, 0, NULL), NI);
    EXPECT(f->C_DestroyObject(s, 1), NI);
    EXPECT(f->C_GetObjectSize(s, 1, &n), NI);
    EXPECT(f->C_GetAttributeValue(s, 1, NULL, 0), NI);
    EXPECT(f->C_SetAttributeValue(s, 1, NULL, 0), NI);
    EXPECT(f->C_FindObjectsInit(s, NULL, 0), NI);
    EXPECT(f->C_FindObjects(s, NULL, 0, &n), NI);
    EXPECT(f->C_FindObjectsFinal(s), NI);
    EXPECT(f->C_EncryptInit(s, &m, 1), NI);
    EXPECT(f->C_Encrypt(s, buf, 1, NULL, &n), NI);
    EXPECT(f->C_EncryptUpdate(s, buf, 1, NULL, &n), NI);
    EXPECT(f->C_EncryptFinal(s, NULL, &n), NI);
    EXPECT(f->C_DecryptInit(s, &m, 1), NI);
    EXPECT(f->C_Decrypt(s, buf, 1, NULL, &n), NI);
    EXPECT(f->C_DecryptUpdate(s, buf, 1, NULL, &n), NI);
    EXPECT(f->C_DecryptFinal(s, NULL, &n), NI);
    EXPECT(f->C_DigestInit(s, &m), NI);
    EXPECT(f->C_Digest(s, buf, 1, NULL, &n), NI);
    EXPECT(f->C_DigestUpdate(s, buf, 1), NI);
    EXPECT(f->C_DigestKey(s, 1), NI);
    EXPECT(f->C_DigestFinal(s, NULL, &n), NI);
    EXPECT(f->C_SignInit(s, &m, 1), NI);
    EXPECT(f->C_Sign(s, buf, 1, NULL, &n), NI);
    EXPECT(f->C_SignUpdate(s, buf, 1), NI);
    EXPECT(f->C_SignFinal(s, NULL, &n), NI);
    EXPECT(f->C_SignRecoverInit(s, &m, 1), NI);
    EXPECT(f->C_SignRecover(s, buf, 1, NULL, &n), NI);
    EXPECT(f->C_VerifyInit(s, &m, 1), NI);
    EXPECT(f->C_Verify(s, buf, 1, buf, 1), NI);
    EXPECT(f->C_VerifyUpdate(s, buf, 1), NI);
    EXPECT(f->C_VerifyFinal(s, buf, 1), NI);
    EXPECT(f->C_VerifyRecoverInit(s, &m, 1), NI);
    EXPECT(f->C_VerifyRecover(s, buf, 1, NULL, &n), NI);
    EXPECT(f->C_DigestEncryptUpdate(s, buf, 1, NULL, &n), NI);
    EXPECT(f->C_DecryptDigestUpdate(s, buf, 1, NULL, &n), NI);
    EXPECT(f->C_SignEncryptUpdate(s, buf, 1, NULL, &n), NI);
    EXPECT(f->C_DecryptVerifyUpdate(s, buf, 1, NULL, &n), NI);
    EXPECT(f->C_GenerateKey(s, &m, NULL, 0, NULL), NI);
    EXPECT(f->C_GenerateKeyPair(s, &m, NULL, 0, NULL, 0, NULL, NULL), NI);
    EXPECT(f->C_WrapKey(s, &m, 1, 2, NULL, &n), NI);
    EXPECT(f->C_UnwrapKey(s, &m, 1, buf, 1, NULL, 0, NULL), NI);
    EXPECT(f->C_DeriveKey(s, &m, 1, NULL, 0, NULL), NI);
    EXPECT(f->C_SeedRandom(s, buf, 1), NI);
    EXPECT(f->C_GenerateRandom(s, buf, 1), NI);
    EXPECT(f->C_GetFunctionStatus(s), NI);
    EXPECT(f->C_CancelFunction(s), NI);
    EXPECT(f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL), NI);
}

/* ------------------------------------------------------------------ bad arguments */
static void test_args(void) {
    CK_C_INITIALIZE_ARGS a;
    memset(&a, 0, sizeof a);
    a.pReserved = &a;
    EXPECT(f->C_Initialize(&a), CKR_ARGUMENTS_BAD);
    memset(&a, 0, sizeof a);
    a.CreateMutex = (CK_CREATEMUTEX)1; /* only one of four */
    EXPECT(f->C_Initialize(&a), CKR_ARGUMENTS_BAD);
    init_default();
    EXPECT(f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    EXPECT(f->C_Finalize(&a), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetSlotList(CK_FALSE, NULL, NULL), CKR_ARGUMENTS_BAD);
    CK_SLOT_ID slot = token_slot();
    EXPECT(f->C_GetSlotInfo(slot, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetTokenInfo(slot, NULL), CKR_ARGUMENTS_BAD);
    CK_SLOT_INFO si;
    EXPECT(f->C_GetSlotInfo(0x7777777, &si), CKR_SLOT_ID_INVALID);
    EXPECT(f->C_GetMechanismInfo(slot, CKM_SHA256, NULL), CKR_ARGUMENTS_BAD);
    CK_MECHANISM_INFO mi;
    EXPECT(f->C_GetMechanismInfo(slot, 0x7fffffff, &mi), CKR_MECHANISM_INVALID);
    EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);
    CK_SESSION_HANDLE s;
    EXPECT(f->C_OpenSession(slot, 0, NULL, NULL, &s), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    EXPECT(f->C_GetSessionInfo(0x5555, NULL), CKR_ARGUMENTS_BAD);
    CK_SESSION_INFO sinfo;
    EXPECT(f->C_GetSessionInfo(0x5555, &sinfo), CKR_SESSION_HANDLE_INVALID);
    EXPECT(f->C_CloseSession(0x5555), CKR_SESSION_HANDLE_INVALID);
    s = login(slot);
    EXPECT(f->C_Login(s, 77, (CK_UTF8CHAR *)"1234", 4), CKR_USER_TYPE_INVALID);
    EXPECT(f->C_Login(s, CKU_USER, NULL, 4), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_CreateObject(s, NULL, 3, NULL), CKR_ARGUMENTS_BAD);
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE bad[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, NULL, 5}};
    CK_OBJECT_HANDLE o;
    EXPECT(f->C_CreateObject(s, bad, 2, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_CreateObject(s, bad, 2, &o), CKR_ATTRIBUTE_VALUE_INVALID);
    CK_ULONG n;
    EXPECT(f->C_GetObjectSize(s, 0x999999, &n), CKR_OBJECT_HANDLE_INVALID);
    EXPECT(f->C_FindObjects(s, NULL, 1, &n), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_FindObjects(s, &o, 1, &n), CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_DigestInit(s, NULL), CKR_ARGUMENTS_BAD);
    CK_MECHANISM m = {CKM_SHA256, NULL, 0};
    CK_BYTE buf[64];
    EXPECT(f->C_Digest(s, buf, 3, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
    EXPECT(f->C_DigestInit(s, &m), CKR_OK);
    EXPECT(f->C_DigestInit(s, &m), CKR_OPERATION_ACTIVE);
    EXPECT(f->C_Digest(s, NULL, 3, buf, &n), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_Digest(s, buf, 3, buf, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_SignInit(s, &m, 0x999999), CKR_KEY_HANDLE_INVALID);
    CK_MECHANISM pss = {CKM_RSA_PKCS_PSS, buf, 3}; /* wrong parameter size */
    CK_OBJECT_HANDLE anykey = 0x999999;
    CK_RV rv = f->C_SignInit(s, &pss, anykey);
    CHECK(rv == CKR_MECHANISM_PARAM_INVALID, "PSS with a 3-byte parameter: 0x%lx", rv);
    EXPECT(f->C_GenerateRandom(s, NULL, 5), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GenerateRandom(s, buf, 0), CKR_OK);
    EXPECT(f->C_SeedRandom(s, buf, 4), CKR_RANDOM_SEED_NOT_SUPPORTED);
    EXPECT(f->C_WaitForSlotEvent(CKF_DONT_BLOCK, NULL, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetOperationState(s, NULL, &n), CKR_FUNCTION_NOT_SUPPORTED);
    EXPECT(f->C_SignRecoverInit(s, &m, 1), CKR_FUNCTION_NOT_SUPPORTED);
    EXPECT(f->C_DigestEncryptUpdate(s, buf, 1, NULL, &n), CKR_FUNCTION_NOT_SUPPORTED);
    EXPECT(f->C_GetFunctionStatus(s), CKR_FUNCTION_NOT_PARALLEL);
    EXPECT(f->C_CancelFunction(s), CKR_FUNCTION_NOT_PARALLEL);
    EXPECT(f->C_CloseSession(s), CKR_OK);
    EXPECT(f->C_CloseSession(s), CKR_SESSION_HANDLE_INVALID);
    EXPECT(f->C_Finalize(NULL), CKR_OK);
    EXPECT(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
}

/* ------------------------------------------------------------------ output buffers */
#define GUARD 0xA5
static int guarded(const unsigned char *b, size_t from, size_t to) {
    for (size_t i = from; i < to; i++)
        if (b[i] != GUARD)
            return 0;
    return 1;
}

static void test_buffers(void) {
    init_default();
    CK_SLOT_ID slot = token_slot();
    CK_SESSION_HANDLE s = login(slot);

    /* Slot list: count query, short list. */
    CK_ULONG n = 0;
    EXPECT(f->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
    CHECK(n >= 2, "a token and the empty slot");
    CK_SLOT_ID few[1] = {0xdead};
    CK_ULONG one = 1;
    EXPECT(f->C_GetSlotList(CK_FALSE, few, &one), CKR_BUFFER_TOO_SMALL);
    CHECK(one == n, "count after BUFFER_TOO_SMALL");

    /* C_GetAttributeValue: value in a short buffer between guard bytes. */
    CK_OBJECT_CLASS cls = CKO_DATA;
    char value[] = "the quick brown fox";
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},  {CKA_TOKEN, &no, 1},
                        {CKA_VALUE, value, sizeof value - 1}, {CKA_LABEL, "buf", 3}};
    CK_OBJECT_HANDLE o;
    EXPECT(f->C_CreateObject(s, t, 4, &o), CKR_OK);
    unsigned char region[64];
    memset(region, GUARD, sizeof region);
    unsigned char label[8];
    memset(label, GUARD, sizeof label);
    CK_ATTRIBUTE q[] = {{CKA_VALUE, region + 16, 5}, {CKA_LABEL, label, sizeof label},
                        {CKA_MODULUS, NULL, 0}, {CKA_APPLICATION, NULL, 0}};
    EXPECT(f->C_GetAttributeValue(s, o, q, 4), CKR_BUFFER_TOO_SMALL);
    CHECK(q[0].ulValueLen == CK_UNAVAILABLE_INFORMATION, "short buffer length must be unavailable");
    CHECK(guarded(region, 0, sizeof region), "a short buffer was written to");
    CHECK(q[1].ulValueLen == 3 && memcmp(label, "buf", 3) == 0 && guarded(label, 3, 8),
          "later attributes are still processed");
    CHECK(q[2].ulValueLen == CK_UNAVAILABLE_INFORMATION, "invalid attribute type");
    q[0].pValue = NULL;
    q[0].ulValueLen = 0;
    EXPECT(f->C_GetAttributeValue(s, o, q, 1), CKR_OK);
    CHECK(q[0].ulValueLen == sizeof value - 1, "size query on NULL: %lu", q[0].ulValueLen);
    q[0].pValue = region + 16;
    EXPECT(f->C_GetAttributeValue(s, o, q, 1), CKR_OK);
    CHECK(memcmp(region + 16, value, sizeof value - 1) == 0, "value");
    CHECK(guarded(region, 0, 16) && guarded(region, 16 + sizeof value - 1, sizeof region), "overrun");
    CK_ATTRIBUTE bogus = {0x7ffffff0UL, NULL, 0};
    EXPECT(f->C_GetAttributeValue(s, o, &bogus, 1), CKR_ATTRIBUTE_TYPE_INVALID);
    CHECK(bogus.ulValueLen == CK_UNAVAILABLE_INFORMATION, "unknown attribute length");

    /* A sensitive secret key: CKA_VALUE is unavailable, CKR_ATTRIBUTE_SENSITIVE. */
    CK_MECHANISM kg = {CKM_AES_KEY_GEN, NULL, 0};
    CK_ULONG len32 = 32;
    CK_ATTRIBUTE kt[] = {{CKA_VALUE_LEN, &len32, sizeof len32}, {CKA_SENSITIVE, &yes, 1},
                         {CKA_TOKEN, &no, 1}, {CKA_ENCRYPT, &yes, 1}};
    CK_OBJECT_HANDLE k;
    EXPECT(f->C_GenerateKey(s, &kg, kt, 4, &k), CKR_OK);
    CK_ATTRIBUTE kv = {CKA_VALUE, region, sizeof region};
    memset(region, GUARD, sizeof region);
    EXPECT(f->C_GetAttributeValue(s, k, &kv, 1), CKR_ATTRIBUTE_SENSITIVE);
    CHECK(kv.ulValueLen == CK_UNAVAILABLE_INFORMATION && guarded(region, 0, sizeof region), "sensitive value leaked");

    /* C_Digest: size query keeps the operation; short buffer keeps it; then the result. */
    CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
    EXPECT(f->C_DigestInit(s, &sha), CKR_OK);
    n = 0;
    EXPECT(f->C_Digest(s, (CK_BYTE *)"abc", 3, NULL, &n), CKR_OK);
    CHECK(n == 32, "digest length %lu", n);
    memset(region, GUARD, sizeof region);
    n = 31;
    EXPECT(f->C_Digest(s, (CK_BYTE *)"abc", 3, region + 8, &n), CKR_BUFFER_TOO_SMALL);
    CHECK(n == 32 && guarded(region, 0, sizeof region), "short digest buffer written to");
    n = 32;
    EXPECT(f->C_Digest(s, (CK_BYTE *)"abc", 3, region + 8, &n), CKR_OK);
    static const unsigned char sha256_abc[4] = {0xba, 0x78, 0x16, 0xbf}; /* FIPS 180-2 B.1 */
    CHECK(memcmp(region + 8, sha256_abc, 4) == 0, "SHA-256(abc)");
    CHECK(guarded(region, 0, 8) && guarded(region, 40, sizeof region), "digest overrun");
    EXPECT(f->C_Digest(s, (CK_BYTE *)"abc", 3, region, &n), CKR_OPERATION_NOT_INITIALIZED);

    /* C_Sign with an EC key: a short buffer keeps the operation; the retry returns one signature. */
    CK_MECHANISM ecgen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    static CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}; /* RFC 5480 */
    CK_ATTRIBUTE pub[] = {{CKA_EC_PARAMS, p256, sizeof p256}, {CKA_TOKEN, &no, 1}, {CKA_VERIFY, &yes, 1}};
    CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &no, 1}, {CKA_SIGN, &yes, 1}};
    CK_OBJECT_HANDLE hpub, hpriv;
    EXPECT(f->C_GenerateKeyPair(s, &ecgen, pub, 3, priv, 2, &hpub, &hpriv), CKR_OK);
    CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
    EXPECT(f->C_SignInit(s, &ecdsa, hpriv), CKR_OK);
    n = 0;
    EXPECT(f->C_Sign(s, (CK_BYTE *)"msg", 3, NULL, &n), CKR_OK);
    CHECK(n == 64, "P-256 signature length %lu", n);
    memset(region, GUARD, sizeof region);
    n = 10;
    EXPECT(f->C_Sign(s, (CK_BYTE *)"msg", 3, region, &n), CKR_BUFFER_TOO_SMALL);
    CHECK(n == 64 && guarded(region, 0, sizeof region), "short signature buffer written to");
    n = 64;
    EXPECT(f->C_Sign(s, (CK_BYTE *)"msg", 3, region, &n), CKR_OK);
    EXPECT(f->C_VerifyInit(s, &ecdsa, hpub), CKR_OK);
    EXPECT(f->C_Verify(s, (CK_BYTE *)"msg", 3, region, 64), CKR_OK);
    region[5] ^= 1;
    EXPECT(f->C_VerifyInit(s, &ecdsa, hpub), CKR_OK);
    EXPECT(f->C_Verify(s, (CK_BYTE *)"msg", 3, region, 64), CKR_SIGNATURE_INVALID);
    EXPECT(f->C_VerifyInit(s, &ecdsa, hpub), CKR_OK);
    EXPECT(f->C_Verify(s, (CK_BYTE *)"msg", 3, region, 63), CKR_SIGNATURE_LEN_RANGE);

    /* C_FindObjects in pieces. */
    CK_ATTRIBUTE ft = {CKA_TOKEN, &no, 1};
    EXPECT(f->C_FindObjectsInit(s, &ft, 1), CKR_OK);
    EXPECT(f->C_FindObjectsInit(s, &ft, 1), CKR_OPERATION_ACTIVE);
    CK_OBJECT_HANDLE found[2];
    CK_ULONG total = 0;
    for (;;) {
        EXPECT(f->C_FindObjects(s, found, 1, &n), CKR_OK);
        if (n == 0)
            break;
        total += n;
    }
    EXPECT(f->C_FindObjectsFinal(s), CKR_OK);
    CHECK(total == 4, "session objects found one by one: %lu", total);

    EXPECT(f->C_CloseSession(s), CKR_OK);
    EXPECT(f->C_Finalize(NULL), CKR_OK);
}

/* ------------------------------------------------------------------ application mutexes */
static int created, destroyed;
static long locks, unlocks;
static CK_RV create_mutex(void **m) {
    pthread_mutex_t *p = malloc(sizeof *p);
    pthread_mutex_init(p, NULL);
    *m = p;
    __sync_fetch_and_add(&created, 1);
    return CKR_OK;
}
static CK_RV destroy_mutex(void *m) {
    pthread_mutex_destroy(m);
    free(m);
    __sync_fetch_and_add(&destroyed, 1);
    return CKR_OK;
}
static CK_RV lock_mutex(void *m) {
    pthread_mutex_lock(m);
    __sync_fetch_and_add(&locks, 1);
    return CKR_OK;
}
static CK_RV unlock_mutex(void *m) {
    __sync_fetch_and_add(&unlocks, 1);
    pthread_mutex_unlock(m);
    return CKR_OK;
}

static void *digest_loop(void *arg) {
    CK_SLOT_ID slot = *(CK_SLOT_ID *)arg;
    CK_SESSION_HANDLE s;
    if (f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK)
        return (void *)1;
    CK_MECHANISM m = {CKM_SHA256, NULL, 0};
    for (int i = 0; i < 300; i++) {
        CK_BYTE out[32];
        CK_ULONG n = sizeof out;
        if (f->C_DigestInit(s, &m) != CKR_OK || f->C_Digest(s, (CK_BYTE *)"abc", 3, out, &n) != CKR_OK ||
            out[0] != 0xba)
            return (void *)1;
    }
    f->C_CloseSession(s);
    return NULL;
}

static void run_threads(CK_SLOT_ID slot, int nthreads) {
    pthread_t th[16];
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, digest_loop, &slot);
    for (int i = 0; i < nthreads; i++) {
        void *r;
        pthread_join(th[i], &r);
        CHECK(r == NULL, "thread %d failed", i);
    }
}

static void test_mutexes(void) {
    CK_C_INITIALIZE_ARGS a;
    memset(&a, 0, sizeof a);
    a.CreateMutex = create_mutex;
    a.DestroyMutex = destroy_mutex;
    a.LockMutex = lock_mutex;
    a.UnlockMutex = unlock_mutex;
    EXPECT(f->C_Initialize(&a), CKR_OK);
    CHECK(created >= 1, "the application's CreateMutex was not used");
    CK_SLOT_ID slot = token_slot();
    run_threads(slot, 4);
    CHECK(locks > 1000 && locks == unlocks, "application mutexes: %ld locks, %ld unlocks", locks, unlocks);
    EXPECT(f->C_Finalize(NULL), CKR_OK);
    CHECK(destroyed == created, "every application mutex destroyed (%d of %d)", destroyed, created);
    /* With CKF_OS_LOCKING_OK as well, the library may use its own locking. */
    a.flags = CKF_OS_LOCKING_OK;
    EXPECT(f->C_Initialize(&a), CKR_OK);
    run_threads(token_slot(), 4);
    EXPECT(f->C_Finalize(NULL), CKR_OK);
}

/* ------------------------------------------------------------------ no threads of our own */
static int thread_count(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n;
}

static void test_nothreads(void) {
    int before = thread_count();
    CK_C_INITIALIZE_ARGS a;
    memset(&a, 0, sizeof a);
    a.flags = CKF_LIBRARY_CANT_CREATE_OS_THREADS | CKF_OS_LOCKING_OK;
    EXPECT(f->C_Initialize(&a), CKR_OK);
    CK_SLOT_ID slot = token_slot();
    CK_SESSION_HANDLE s = login(slot);
    CK_BYTE r[32];
    EXPECT(f->C_GenerateRandom(s, r, sizeof r), CKR_OK);
    CK_SLOT_ID ev;
    CK_RV rv = f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, NULL);
    CHECK(rv == CKR_NO_EVENT || rv == CKR_OK, "WaitForSlotEvent(DONT_BLOCK): 0x%lx", rv);
    CHECK(thread_count() == before, "the library created threads: %d -> %d", before, thread_count());
    EXPECT(f->C_Finalize(NULL), CKR_OK);
}

/* ------------------------------------------------------------------ fork */
static void test_fork(void) {
    init_default();
    CK_SLOT_ID slot = token_slot();
    CK_SESSION_HANDLE s = login(slot);
    pid_t pid = fork();
    if (pid == 0) {
        current = "fork child";
        CK_ULONG n;
        EXPECT(f->C_GetSlotList(CK_FALSE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
        CK_SESSION_INFO si;
        EXPECT(f->C_GetSessionInfo(s, &si), CKR_CRYPTOKI_NOT_INITIALIZED);
        EXPECT(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
        init_default();
        EXPECT(f->C_GetSessionInfo(s, &si), CKR_SESSION_HANDLE_INVALID);
        CK_SESSION_HANDLE cs = login(token_slot());
        CK_BYTE r[16];
        EXPECT(f->C_GenerateRandom(cs, r, sizeof r), CKR_OK);
        EXPECT(f->C_Finalize(NULL), CKR_OK);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed");
    CK_SESSION_INFO si;
    EXPECT(f->C_GetSessionInfo(s, &si), CKR_OK);
    CHECK(si.state == CKS_RW_USER_FUNCTIONS, "the parent is still logged in");
    CK_BYTE r[16];
    EXPECT(f->C_GenerateRandom(s, r, sizeof r), CKR_OK);
    EXPECT(f->C_Finalize(NULL), CKR_OK);
}

/* ------------------------------------------------------------------ threads */
static void test_threads(void) {
    CK_C_INITIALIZE_ARGS a;
    memset(&a, 0, sizeof a);
    a.flags = CKF_OS_LOCKING_OK;
    EXPECT(f->C_Initialize(&a), CKR_OK);
    run_threads(token_slot(), 8);
    EXPECT(f->C_Finalize(NULL), CKR_OK);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODULE TEST\n", argv[0]);
        return 2;
    }
    lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    CK_RV (*gfl)(CK_FUNCTION_LIST **) = (CK_RV(*)(CK_FUNCTION_LIST **))dlsym(lib, "C_GetFunctionList");
    if (!gfl || gfl(&f) != CKR_OK) {
        fprintf(stderr, "C_GetFunctionList failed\n");
        return 2;
    }
    current = argv[2];
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {{"interfaces", test_interfaces}, {"uninit", test_uninit}, {"args", test_args},
                 {"buffers", test_buffers},       {"mutexes", test_mutexes}, {"nothreads", test_nothreads},
                 {"fork", test_fork},             {"threads", test_threads}};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (strcmp(argv[2], tests[i].name) == 0) {
            tests[i].fn();
            printf("PASS %s\n", argv[2]);
            return 0;
        }
    }
    fprintf(stderr, "unknown test %s\n", argv[2]);
    return 2;
}
