/*
 * The SDF interface of GM/T 0018-2012 "Interface specifications of
 * cryptography device application" (密码设备应用接口规范), written for hsmd
 * from the standard's definitions: data types, algorithm identifiers (GM/T
 * 0006-2012), error codes (appendix A) and function prototypes.
 *
 * Vendors ship their own headers with small differences; what matters for
 * dlopen() is the ABI, which this header fixes (layout asserts below). The few
 * functions marked EXTENSION are not in the 2012 edition but are offered by
 * many vendors (and by tools/softsdf); their parameter order is given here.
 *
 * ---------------------------------------------------------------------------
 * What hsmd requires of a vendor SDF library
 * ---------------------------------------------------------------------------
 * hsmd dlopen()s the library named in its configuration and resolves each
 * function with dlsym() into the matching SDF_*_fn pointer type below.
 *
 * Required (the library is rejected if any is missing):
 *   SDF_OpenDevice, SDF_CloseDevice, SDF_OpenSession, SDF_CloseSession,
 *   SDF_GetDeviceInfo                  device and session pool, health check
 *   SDF_GenerateRandom                 random
 *   SDF_GetPrivateKeyAccessRight,
 *   SDF_ReleasePrivateKeyAccessRight   key passwords, per session
 *   SDF_ExportSignPublicKey_ECC,
 *   SDF_ExportEncPublicKey_ECC         public keys of the key indexes
 *   SDF_InternalSign_ECC               SM2 signature of a 32-byte digest e
 *                                      (hsmd computes Z and e = SM3(Z || M)
 *                                      itself; the SDF_Hash* functions are
 *                                      not used)
 *
 * Optional (the feature is reported unavailable when missing):
 *   SDF_InternalDecrypt_ECC            SM2 decryption with the internal
 *                                      encryption key (EXTENSION)
 *   SDF_Encrypt, SDF_Decrypt,
 *   SDF_DestroyKey and
 *   SDF_GetSymmKeyHandle               SM4 ECB/CBC with the device's symmetric
 *                                      key at an index (EXTENSION)
 *   SDF_ImportKeyWithKEK               SM4 with a key wrapped under the
 *                                      device's key-encryption key (standard)
 *   SDF_ExternalVerify_ECC             self-test of a fresh signature
 *
 * Error codes as hsmd reads them: SDR_PRKRERR from
 * SDF_GetPrivateKeyAccessRight is a wrong password (failed, never retried);
 * SDR_PARDENY is a session without the access right (acquire it again);
 * SDR_KEYNOTEXIST is an index the device does not hold; SDR_OPENDEVICE,
 * SDR_OPENSESSION, SDR_COMMFAIL and SDR_HARDFAIL mean the device or session
 * must be reopened.
 */
#ifndef HSMD_DAEMON_BACKEND_SDF_GMT0018_H_
#define HSMD_DAEMON_BACKEND_SDF_GMT0018_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Sizes
 * ------------------------------------------------------------------------- */
#define RSAref_MAX_BITS 2048
#define RSAref_MAX_LEN ((RSAref_MAX_BITS + 7) / 8)
#define RSAref_MAX_PBITS ((RSAref_MAX_BITS + 1) / 2)
#define RSAref_MAX_PLEN ((RSAref_MAX_PBITS + 7) / 8)

#define ECCref_MAX_BITS 512
#define ECCref_MAX_LEN ((ECCref_MAX_BITS + 7) / 8) /* 64 */

/* SM2 values are 32 bytes, right-aligned (big-endian, leading zero bytes) in
 * the 64-byte ECCref fields: bytes [0, 32) are zero, [32, 64) the value. */
#define SDF_SM2_LEN 32
#define SDF_SM2_OFFSET (ECCref_MAX_LEN - SDF_SM2_LEN)

/* ---------------------------------------------------------------------------
 * Algorithm identifiers (GM/T 0006-2012)
 * ------------------------------------------------------------------------- */
/* Block cipher modes, OR-ed with a cipher. */
#define SGD_ECB 0x00000001
#define SGD_CBC 0x00000002
#define SGD_CFB 0x00000004
#define SGD_OFB 0x00000008
#define SGD_MAC 0x00000010

#define SGD_SM1 0x00000100
#define SGD_SSF33 0x00000200
#define SGD_SM4 0x00000400
#define SGD_ZUC 0x00000800

#define SGD_SM1_ECB 0x00000101
#define SGD_SM1_CBC 0x00000102
#define SGD_SM1_CFB 0x00000104
#define SGD_SM1_OFB 0x00000108
#define SGD_SM1_MAC 0x00000110
#define SGD_SSF33_ECB 0x00000201
#define SGD_SSF33_CBC 0x00000202
#define SGD_SSF33_CFB 0x00000204
#define SGD_SSF33_OFB 0x00000208
#define SGD_SSF33_MAC 0x00000210
#define SGD_SM4_ECB 0x00000401
#define SGD_SM4_CBC 0x00000402
#define SGD_SM4_CFB 0x00000404
#define SGD_SM4_OFB 0x00000408
#define SGD_SM4_MAC 0x00000410
#define SGD_ZUC_EEA3 0x00000801
#define SGD_ZUC_EIA3 0x00000802

/* Public-key algorithms. Some vendor headers predate GM/T 0006-2012 and number
 * the SM2 schemes 0x00020100 (sign), 0x00020200 (key exchange), 0x00020400
 * (encryption); a caller of such a library needs these identifiers
 * configurable. */
#define SGD_RSA 0x00010000
#define SGD_SM2 0x00020100   /* SM2, any scheme */
#define SGD_SM2_1 0x00020200 /* SM2 signature */
#define SGD_SM2_2 0x00020400 /* SM2 key exchange */
#define SGD_SM2_3 0x00020800 /* SM2 encryption */

/* Hash algorithms. */
#define SGD_SM3 0x00000001
#define SGD_SHA1 0x00000002
#define SGD_SHA256 0x00000004

/* ---------------------------------------------------------------------------
 * Error codes (GM/T 0018-2012 appendix A)
 * ------------------------------------------------------------------------- */
#define SDR_OK 0x00000000
#define SDR_BASE 0x01000000
#define SDR_UNKNOWERR (SDR_BASE + 0x00000001)        /* unknown error */
#define SDR_NOTSUPPORT (SDR_BASE + 0x00000002)       /* not supported */
#define SDR_COMMFAIL (SDR_BASE + 0x00000003)         /* communication failure */
#define SDR_HARDFAIL (SDR_BASE + 0x00000004)         /* hardware failure */
#define SDR_OPENDEVICE (SDR_BASE + 0x00000005)       /* opening device failed */
#define SDR_OPENSESSION (SDR_BASE + 0x00000006)      /* session handle error */
#define SDR_PARDENY (SDR_BASE + 0x00000007)          /* permission denied */
#define SDR_KEYNOTEXIST (SDR_BASE + 0x00000008)      /* key does not exist */
#define SDR_ALGNOTSUPPORT (SDR_BASE + 0x00000009)    /* algorithm unsupported */
#define SDR_ALGMODNOTSUPPORT (SDR_BASE + 0x0000000A) /* mode unsupported */
#define SDR_PKOPERR (SDR_BASE + 0x0000000B)          /* public-key op failed */
#define SDR_SKOPERR (SDR_BASE + 0x0000000C)          /* private-key op failed */
#define SDR_SIGNERR (SDR_BASE + 0x0000000D)          /* signing failed */
#define SDR_VERIFYERR (SDR_BASE + 0x0000000E)        /* verification failed */
#define SDR_SYMOPERR (SDR_BASE + 0x0000000F)         /* symmetric op failed */
#define SDR_STEPERR (SDR_BASE + 0x00000010)          /* call out of sequence */
#define SDR_FILESIZEERR (SDR_BASE + 0x00000011)      /* file size exceeded */
#define SDR_FILENOEXIST (SDR_BASE + 0x00000012)      /* file does not exist */
#define SDR_FILEOFSERR (SDR_BASE + 0x00000013)       /* file offset error */
#define SDR_KEYTYPEERR (SDR_BASE + 0x00000014)       /* wrong key type */
#define SDR_KEYERR (SDR_BASE + 0x00000015)           /* key error */
#define SDR_ENCDATAERR (SDR_BASE + 0x00000016)       /* bad encrypted data */
#define SDR_RANDERR (SDR_BASE + 0x00000017)          /* random failure */
#define SDR_PRKRERR (SDR_BASE + 0x00000018)    /* private-key access right */
#define SDR_MACERR (SDR_BASE + 0x00000019)     /* MAC failure */
#define SDR_FILEEXSITS (SDR_BASE + 0x0000001A) /* file exists (sic) */
#define SDR_FILEEXISTS SDR_FILEEXSITS
#define SDR_FILEWERR (SDR_BASE + 0x0000001B)  /* file write failed */
#define SDR_NOBUFFER (SDR_BASE + 0x0000001C)  /* out of storage */
#define SDR_INARGERR (SDR_BASE + 0x0000001D)  /* input argument error */
#define SDR_OUTARGERR (SDR_BASE + 0x0000001E) /* output argument error */

/* ---------------------------------------------------------------------------
 * Data types
 * ------------------------------------------------------------------------- */
typedef struct DeviceInfo_st {
  unsigned char IssuerName[40];
  unsigned char DeviceName[16];
  unsigned char DeviceSerial[16]; /* date (8) + batch (3) + serial (5) */
  unsigned int DeviceVersion;
  unsigned int StandardVersion;
  unsigned int AsymAlgAbility[2]; /* [0] algorithm bits, [1] modulus bits */
  unsigned int SymAlgAbility;
  unsigned int HashAlgAbility;
  unsigned int BufferSize;
} DEVICEINFO;

typedef struct RSArefPublicKey_st {
  unsigned int bits;
  unsigned char m[RSAref_MAX_LEN];
  unsigned char e[RSAref_MAX_LEN];
} RSArefPublicKey;

typedef struct RSArefPrivateKey_st {
  unsigned int bits;
  unsigned char m[RSAref_MAX_LEN];
  unsigned char e[RSAref_MAX_LEN];
  unsigned char d[RSAref_MAX_LEN];
  unsigned char prime[2][RSAref_MAX_PLEN];
  unsigned char pexp[2][RSAref_MAX_PLEN];
  unsigned char coef[RSAref_MAX_PLEN];
} RSArefPrivateKey;

typedef struct ECCrefPublicKey_st {
  unsigned int bits; /* 256 for SM2 */
  unsigned char x[ECCref_MAX_LEN];
  unsigned char y[ECCref_MAX_LEN];
} ECCrefPublicKey;

typedef struct ECCrefPrivateKey_st {
  unsigned int bits;
  unsigned char K[ECCref_MAX_LEN];
} ECCrefPrivateKey;

/* SM2 ciphertext C1 || C3 || C2: (x, y) = C1, M = C3 = SM3(x2 || m || y2),
 * C = C2 of L bytes (L = plaintext length). C is declared with one element as
 * in the standard; the caller allocates SDF_ECCCIPHER_SIZE(L) bytes. */
typedef struct ECCCipher_st {
  unsigned char x[ECCref_MAX_LEN];
  unsigned char y[ECCref_MAX_LEN];
  unsigned char M[32];
  unsigned int L;
  unsigned char C[1];
} ECCCipher;

#define SDF_ECCCIPHER_SIZE(len) \
  (offsetof(ECCCipher, C) + ((len) > 0 ? (size_t)(len) : (size_t)1))

typedef struct ECCSignature_st {
  unsigned char r[ECCref_MAX_LEN];
  unsigned char s[ECCref_MAX_LEN];
} ECCSignature;

/* ---------------------------------------------------------------------------
 * Functions. Each has a pointer type SDF_<Name>_fn for dlsym(). All return
 * SDR_OK or an SDR_* error code. Handles are opaque (void*). "Out-only"
 * length arguments are written, never read: output buffers must be at least
 * as large as the standard says (documented per function).
 * ------------------------------------------------------------------------- */

/* 6.2 Device management. */
typedef int (*SDF_OpenDevice_fn)(void** phDeviceHandle);
typedef int (*SDF_CloseDevice_fn)(void* hDeviceHandle);
typedef int (*SDF_OpenSession_fn)(void* hDeviceHandle, void** phSessionHandle);
typedef int (*SDF_CloseSession_fn)(void* hSessionHandle);
typedef int (*SDF_GetDeviceInfo_fn)(void* hSessionHandle,
                                    DEVICEINFO* pstDeviceInfo);
typedef int (*SDF_GenerateRandom_fn)(void* hSessionHandle,
                                     unsigned int uiLength,
                                     unsigned char* pucRandom);
/* Grants the session the right to use the private keys at uiKeyIndex. */
typedef int (*SDF_GetPrivateKeyAccessRight_fn)(void* hSessionHandle,
                                               unsigned int uiKeyIndex,
                                               unsigned char* pucPassword,
                                               unsigned int uiPwdLength);
typedef int (*SDF_ReleasePrivateKeyAccessRight_fn)(void* hSessionHandle,
                                                   unsigned int uiKeyIndex);

int SDF_OpenDevice(void** phDeviceHandle);
int SDF_CloseDevice(void* hDeviceHandle);
int SDF_OpenSession(void* hDeviceHandle, void** phSessionHandle);
int SDF_CloseSession(void* hSessionHandle);
int SDF_GetDeviceInfo(void* hSessionHandle, DEVICEINFO* pstDeviceInfo);
int SDF_GenerateRandom(void* hSessionHandle, unsigned int uiLength,
                       unsigned char* pucRandom);
int SDF_GetPrivateKeyAccessRight(void* hSessionHandle, unsigned int uiKeyIndex,
                                 unsigned char* pucPassword,
                                 unsigned int uiPwdLength);
int SDF_ReleasePrivateKeyAccessRight(void* hSessionHandle,
                                     unsigned int uiKeyIndex);

/* 6.3 Key management. */
typedef int (*SDF_ExportSignPublicKey_RSA_fn)(void* hSessionHandle,
                                              unsigned int uiKeyIndex,
                                              RSArefPublicKey* pucPublicKey);
typedef int (*SDF_ExportEncPublicKey_RSA_fn)(void* hSessionHandle,
                                             unsigned int uiKeyIndex,
                                             RSArefPublicKey* pucPublicKey);
typedef int (*SDF_GenerateKeyPair_RSA_fn)(void* hSessionHandle,
                                          unsigned int uiKeyBits,
                                          RSArefPublicKey* pucPublicKey,
                                          RSArefPrivateKey* pucPrivateKey);
typedef int (*SDF_GenerateKeyWithIPK_RSA_fn)(
    void* hSessionHandle, unsigned int uiIPKIndex, unsigned int uiKeyBits,
    unsigned char* pucKey, unsigned int* puiKeyLength, void** phKeyHandle);
typedef int (*SDF_GenerateKeyWithEPK_RSA_fn)(
    void* hSessionHandle, unsigned int uiKeyBits, RSArefPublicKey* pucPublicKey,
    unsigned char* pucKey, unsigned int* puiKeyLength, void** phKeyHandle);
typedef int (*SDF_ImportKeyWithISK_RSA_fn)(void* hSessionHandle,
                                           unsigned int uiISKIndex,
                                           unsigned char* pucKey,
                                           unsigned int uiKeyLength,
                                           void** phKeyHandle);
typedef int (*SDF_ExchangeDigitEnvelopeBaseOnRSA_fn)(
    void* hSessionHandle, unsigned int uiKeyIndex,
    RSArefPublicKey* pucPublicKey, unsigned char* pucDEInput,
    unsigned int uiDELength, unsigned char* pucDEOutput,
    unsigned int* puiDELength);
typedef int (*SDF_ExportSignPublicKey_ECC_fn)(void* hSessionHandle,
                                              unsigned int uiKeyIndex,
                                              ECCrefPublicKey* pucPublicKey);
typedef int (*SDF_ExportEncPublicKey_ECC_fn)(void* hSessionHandle,
                                             unsigned int uiKeyIndex,
                                             ECCrefPublicKey* pucPublicKey);
typedef int (*SDF_GenerateKeyPair_ECC_fn)(void* hSessionHandle,
                                          unsigned int uiAlgID,
                                          unsigned int uiKeyBits,
                                          ECCrefPublicKey* pucPublicKey,
                                          ECCrefPrivateKey* pucPrivateKey);
typedef int (*SDF_GenerateKeyWithIPK_ECC_fn)(void* hSessionHandle,
                                             unsigned int uiIPKIndex,
                                             unsigned int uiKeyBits,
                                             ECCCipher* pucKey,
                                             void** phKeyHandle);
typedef int (*SDF_GenerateKeyWithEPK_ECC_fn)(
    void* hSessionHandle, unsigned int uiKeyBits, unsigned int uiAlgID,
    ECCrefPublicKey* pucPublicKey, ECCCipher* pucKey, void** phKeyHandle);
typedef int (*SDF_ImportKeyWithISK_ECC_fn)(void* hSessionHandle,
                                           unsigned int uiISKIndex,
                                           ECCCipher* pucKey,
                                           void** phKeyHandle);
typedef int (*SDF_ExchangeDigitEnvelopeBaseOnECC_fn)(
    void* hSessionHandle, unsigned int uiKeyIndex, unsigned int uiAlgID,
    ECCrefPublicKey* pucPublicKey, ECCCipher* pucEncDataIn,
    ECCCipher* pucEncDataOut);
/* Generates a session key of uiKeyBits, returns it encrypted (uiAlgID, e.g.
 * SGD_SM4_ECB) under the device's key-encryption key uiKEKIndex. */
typedef int (*SDF_GenerateKeyWithKEK_fn)(
    void* hSessionHandle, unsigned int uiKeyBits, unsigned int uiAlgID,
    unsigned int uiKEKIndex, unsigned char* pucKey, unsigned int* puiKeyLength,
    void** phKeyHandle);
/* Imports a session key encrypted (uiAlgID) under KEK uiKEKIndex. */
typedef int (*SDF_ImportKeyWithKEK_fn)(
    void* hSessionHandle, unsigned int uiAlgID, unsigned int uiKEKIndex,
    unsigned char* pucKey, unsigned int uiKeyLength, void** phKeyHandle);
/* Imports a plaintext session key. */
typedef int (*SDF_ImportKey_fn)(void* hSessionHandle, unsigned char* pucKey,
                                unsigned int uiKeyLength, void** phKeyHandle);
typedef int (*SDF_DestroyKey_fn)(void* hSessionHandle, void* hKeyHandle);
/* EXTENSION: a handle for the device's internal symmetric key uiKeyIndex. */
typedef int (*SDF_GetSymmKeyHandle_fn)(void* hSessionHandle,
                                       unsigned int uiKeyIndex,
                                       void** phKeyHandle);

int SDF_ExportSignPublicKey_RSA(void* hSessionHandle, unsigned int uiKeyIndex,
                                RSArefPublicKey* pucPublicKey);
int SDF_ExportEncPublicKey_RSA(void* hSessionHandle, unsigned int uiKeyIndex,
                               RSArefPublicKey* pucPublicKey);
int SDF_GenerateKeyPair_RSA(void* hSessionHandle, unsigned int uiKeyBits,
                            RSArefPublicKey* pucPublicKey,
                            RSArefPrivateKey* pucPrivateKey);
int SDF_GenerateKeyWithIPK_RSA(void* hSessionHandle, unsigned int uiIPKIndex,
                               unsigned int uiKeyBits, unsigned char* pucKey,
                               unsigned int* puiKeyLength, void** phKeyHandle);
int SDF_GenerateKeyWithEPK_RSA(void* hSessionHandle, unsigned int uiKeyBits,
                               RSArefPublicKey* pucPublicKey,
                               unsigned char* pucKey,
                               unsigned int* puiKeyLength, void** phKeyHandle);
int SDF_ImportKeyWithISK_RSA(void* hSessionHandle, unsigned int uiISKIndex,
                             unsigned char* pucKey, unsigned int uiKeyLength,
                             void** phKeyHandle);
int SDF_ExchangeDigitEnvelopeBaseOnRSA(void* hSessionHandle,
                                       unsigned int uiKeyIndex,
                                       RSArefPublicKey* pucPublicKey,
                                       unsigned char* pucDEInput,
                                       unsigned int uiDELength,
                                       unsigned char* pucDEOutput,
                                       unsigned int* puiDELength);
int SDF_ExportSignPublicKey_ECC(void* hSessionHandle, unsigned int uiKeyIndex,
                                ECCrefPublicKey* pucPublicKey);
int SDF_ExportEncPublicKey_ECC(void* hSessionHandle, unsigned int uiKeyIndex,
                               ECCrefPublicKey* pucPublicKey);
int SDF_GenerateKeyPair_ECC(void* hSessionHandle, unsigned int uiAlgID,
                            unsigned int uiKeyBits,
                            ECCrefPublicKey* pucPublicKey,
                            ECCrefPrivateKey* pucPrivateKey);
int SDF_GenerateKeyWithIPK_ECC(void* hSessionHandle, unsigned int uiIPKIndex,
                               unsigned int uiKeyBits, ECCCipher* pucKey,
                               void** phKeyHandle);
int SDF_GenerateKeyWithEPK_ECC(void* hSessionHandle, unsigned int uiKeyBits,
                               unsigned int uiAlgID,
                               ECCrefPublicKey* pucPublicKey, ECCCipher* pucKey,
                               void** phKeyHandle);
int SDF_ImportKeyWithISK_ECC(void* hSessionHandle, unsigned int uiISKIndex,
                             ECCCipher* pucKey, void** phKeyHandle);
int SDF_ExchangeDigitEnvelopeBaseOnECC(void* hSessionHandle,
                                       unsigned int uiKeyIndex,
                                       unsigned int uiAlgID,
                                       ECCrefPublicKey* pucPublicKey,
                                       ECCCipher* pucEncDataIn,
                                       ECCCipher* pucEncDataOut);
int SDF_GenerateKeyWithKEK(void* hSessionHandle, unsigned int uiKeyBits,
                           unsigned int uiAlgID, unsigned int uiKEKIndex,
                           unsigned char* pucKey, unsigned int* puiKeyLength,
                           void** phKeyHandle);
int SDF_ImportKeyWithKEK(void* hSessionHandle, unsigned int uiAlgID,
                         unsigned int uiKEKIndex, unsigned char* pucKey,
                         unsigned int uiKeyLength, void** phKeyHandle);
int SDF_ImportKey(void* hSessionHandle, unsigned char* pucKey,
                  unsigned int uiKeyLength, void** phKeyHandle);
int SDF_DestroyKey(void* hSessionHandle, void* hKeyHandle);
int SDF_GetSymmKeyHandle(void* hSessionHandle, unsigned int uiKeyIndex,
                         void** phKeyHandle);

/* 6.4 Asymmetric operations. For SM2, pucData of the sign and verify
 * functions is the 32-byte digest e = SM3(Z || M). */
typedef int (*SDF_ExternalPublicKeyOperation_RSA_fn)(
    void* hSessionHandle, RSArefPublicKey* pucPublicKey,
    unsigned char* pucDataInput, unsigned int uiInputLength,
    unsigned char* pucDataOutput, unsigned int* puiOutputLength);
typedef int (*SDF_ExternalPrivateKeyOperation_RSA_fn)(
    void* hSessionHandle, RSArefPrivateKey* pucPrivateKey,
    unsigned char* pucDataInput, unsigned int uiInputLength,
    unsigned char* pucDataOutput, unsigned int* puiOutputLength);
typedef int (*SDF_InternalPublicKeyOperation_RSA_fn)(
    void* hSessionHandle, unsigned int uiKeyIndex, unsigned char* pucDataInput,
    unsigned int uiInputLength, unsigned char* pucDataOutput,
    unsigned int* puiOutputLength);
typedef int (*SDF_InternalPrivateKeyOperation_RSA_fn)(
    void* hSessionHandle, unsigned int uiKeyIndex, unsigned char* pucDataInput,
    unsigned int uiInputLength, unsigned char* pucDataOutput,
    unsigned int* puiOutputLength);
typedef int (*SDF_ExternalSign_ECC_fn)(void* hSessionHandle,
                                       unsigned int uiAlgID,
                                       ECCrefPrivateKey* pucPrivateKey,
                                       unsigned char* pucData,
                                       unsigned int uiDataLength,
                                       ECCSignature* pucSignature);
typedef int (*SDF_ExternalVerify_ECC_fn)(void* hSessionHandle,
                                         unsigned int uiAlgID,
                                         ECCrefPublicKey* pucPublicKey,
                                         unsigned char* pucDataInput,
                                         unsigned int uiInputLength,
                                         ECCSignature* pucSignature);
/* Signs with the signing key uiISKIndex; needs the access right. */
typedef int (*SDF_InternalSign_ECC_fn)(void* hSessionHandle,
                                       unsigned int uiISKIndex,
                                       unsigned char* pucData,
                                       unsigned int uiDataLength,
                                       ECCSignature* pucSignature);
/* Verifies with the signing public key uiISKIndex. */
typedef int (*SDF_InternalVerify_ECC_fn)(void* hSessionHandle,
                                         unsigned int uiISKIndex,
                                         unsigned char* pucData,
                                         unsigned int uiDataLength,
                                         ECCSignature* pucSignature);
/* pucEncData must have room for uiDataLength bytes of C. */
typedef int (*SDF_ExternalEncrypt_ECC_fn)(
    void* hSessionHandle, unsigned int uiAlgID, ECCrefPublicKey* pucPublicKey,
    unsigned char* pucData, unsigned int uiDataLength, ECCCipher* pucEncData);
typedef int (*SDF_ExternalDecrypt_ECC_fn)(
    void* hSessionHandle, unsigned int uiAlgID, ECCrefPrivateKey* pucPrivateKey,
    ECCCipher* pucEncData, unsigned char* pucData, unsigned int* puiDataLength);
/* EXTENSION: encrypts with the encryption public key uiIPKIndex. */
typedef int (*SDF_InternalEncrypt_ECC_fn)(
    void* hSessionHandle, unsigned int uiIPKIndex, unsigned int uiAlgID,
    unsigned char* pucData, unsigned int uiDataLength, ECCCipher* pucEncData);
/* EXTENSION: decrypts with the encryption private key uiISKIndex (needs the
 * access right); pucData must have room for pucEncData->L bytes and
 * *puiDataLength is out-only. */
typedef int (*SDF_InternalDecrypt_ECC_fn)(
    void* hSessionHandle, unsigned int uiISKIndex, unsigned int uiAlgID,
    ECCCipher* pucEncData, unsigned char* pucData, unsigned int* puiDataLength);

int SDF_ExternalPublicKeyOperation_RSA(void* hSessionHandle,
                                       RSArefPublicKey* pucPublicKey,
                                       unsigned char* pucDataInput,
                                       unsigned int uiInputLength,
                                       unsigned char* pucDataOutput,
                                       unsigned int* puiOutputLength);
int SDF_ExternalPrivateKeyOperation_RSA(void* hSessionHandle,
                                        RSArefPrivateKey* pucPrivateKey,
                                        unsigned char* pucDataInput,
                                        unsigned int uiInputLength,
                                        unsigned char* pucDataOutput,
                                        unsigned int* puiOutputLength);
int SDF_InternalPublicKeyOperation_RSA(void* hSessionHandle,
                                       unsigned int uiKeyIndex,
                                       unsigned char* pucDataInput,
                                       unsigned int uiInputLength,
                                       unsigned char* pucDataOutput,
                                       unsigned int* puiOutputLength);
int SDF_InternalPrivateKeyOperation_RSA(void* hSessionHandle,
                                        unsigned int uiKeyIndex,
                                        unsigned char* pucDataInput,
                                        unsigned int uiInputLength,
                                        unsigned char* pucDataOutput,
                                        unsigned int* puiOutputLength);
int SDF_ExternalSign_ECC(void* hSessionHandle, unsigned int uiAlgID,
                         ECCrefPrivateKey* pucPrivateKey,
                         unsigned char* pucData, unsigned int uiDataLength,
                         ECCSignature* pucSignature);
int SDF_ExternalVerify_ECC(void* hSessionHandle, unsigned int uiAlgID,
                           ECCrefPublicKey* pucPublicKey,
                           unsigned char* pucDataInput,
                           unsigned int uiInputLength,
                           ECCSignature* pucSignature);
int SDF_InternalSign_ECC(void* hSessionHandle, unsigned int uiISKIndex,
                         unsigned char* pucData, unsigned int uiDataLength,
                         ECCSignature* pucSignature);
int SDF_InternalVerify_ECC(void* hSessionHandle, unsigned int uiISKIndex,
                           unsigned char* pucData, unsigned int uiDataLength,
                           ECCSignature* pucSignature);
int SDF_ExternalEncrypt_ECC(void* hSessionHandle, unsigned int uiAlgID,
                            ECCrefPublicKey* pucPublicKey,
                            unsigned char* pucData, unsigned int uiDataLength,
                            ECCCipher* pucEncData);
int SDF_ExternalDecrypt_ECC(void* hSessionHandle, unsigned int uiAlgID,
                            ECCrefPrivateKey* pucPrivateKey,
                            ECCCipher* pucEncData, unsigned char* pucData,
                            unsigned int* puiDataLength);
int SDF_InternalEncrypt_ECC(void* hSessionHandle, unsigned int uiIPKIndex,
                            unsigned int uiAlgID, unsigned char* pucData,
                            unsigned int uiDataLength, ECCCipher* pucEncData);
int SDF_InternalDecrypt_ECC(void* hSessionHandle, unsigned int uiISKIndex,
                            unsigned int uiAlgID, ECCCipher* pucEncData,
                            unsigned char* pucData,
                            unsigned int* puiDataLength);

/* 6.5 Symmetric operations. pucIV (16 bytes for SM4 CBC) is in/out: on
 * return it holds the chaining value for the next call. The output is as long
 * as the input (no padding: lengths are multiples of the block size);
 * *puiEncDataLength / *puiDataLength are out-only. */
typedef int (*SDF_Encrypt_fn)(void* hSessionHandle, void* hKeyHandle,
                              unsigned int uiAlgID, unsigned char* pucIV,
                              unsigned char* pucData, unsigned int uiDataLength,
                              unsigned char* pucEncData,
                              unsigned int* puiEncDataLength);
typedef int (*SDF_Decrypt_fn)(void* hSessionHandle, void* hKeyHandle,
                              unsigned int uiAlgID, unsigned char* pucIV,
                              unsigned char* pucEncData,
                              unsigned int uiEncDataLength,
                              unsigned char* pucData,
                              unsigned int* puiDataLength);
typedef int (*SDF_CalculateMAC_fn)(void* hSessionHandle, void* hKeyHandle,
                                   unsigned int uiAlgID, unsigned char* pucIV,
                                   unsigned char* pucData,
                                   unsigned int uiDataLength,
                                   unsigned char* pucMAC,
                                   unsigned int* puiMACLength);

int SDF_Encrypt(void* hSessionHandle, void* hKeyHandle, unsigned int uiAlgID,
                unsigned char* pucIV, unsigned char* pucData,
                unsigned int uiDataLength, unsigned char* pucEncData,
                unsigned int* puiEncDataLength);
int SDF_Decrypt(void* hSessionHandle, void* hKeyHandle, unsigned int uiAlgID,
                unsigned char* pucIV, unsigned char* pucEncData,
                unsigned int uiEncDataLength, unsigned char* pucData,
                unsigned int* puiDataLength);
int SDF_CalculateMAC(void* hSessionHandle, void* hKeyHandle,
                     unsigned int uiAlgID, unsigned char* pucIV,
                     unsigned char* pucData, unsigned int uiDataLength,
                     unsigned char* pucMAC, unsigned int* puiMACLength);

/* 6.6 Hash. With SGD_SM3, a public key and an ID (uiIDLength > 0) make
 * HashInit start from Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA),
 * so that HashFinal returns e; with neither, it is plain SM3. */
typedef int (*SDF_HashInit_fn)(void* hSessionHandle, unsigned int uiAlgID,
                               ECCrefPublicKey* pucPublicKey,
                               unsigned char* pucID, unsigned int uiIDLength);
typedef int (*SDF_HashUpdate_fn)(void* hSessionHandle, unsigned char* pucData,
                                 unsigned int uiDataLength);
/* pucHash needs 32 bytes for SM3; *puiHashLength is out-only. */
typedef int (*SDF_HashFinal_fn)(void* hSessionHandle, unsigned char* pucHash,
                                unsigned int* puiHashLength);

int SDF_HashInit(void* hSessionHandle, unsigned int uiAlgID,
                 ECCrefPublicKey* pucPublicKey, unsigned char* pucID,
                 unsigned int uiIDLength);
int SDF_HashUpdate(void* hSessionHandle, unsigned char* pucData,
                   unsigned int uiDataLength);
int SDF_HashFinal(void* hSessionHandle, unsigned char* pucHash,
                  unsigned int* puiHashLength);

/* 6.7 User files. */
typedef int (*SDF_CreateFile_fn)(void* hSessionHandle,
                                 unsigned char* pucFileName,
                                 unsigned int uiNameLen,
                                 unsigned int uiFileSize);
typedef int (*SDF_ReadFile_fn)(void* hSessionHandle, unsigned char* pucFileName,
                               unsigned int uiNameLen, unsigned int uiOffset,
                               unsigned int* puiReadLength,
                               unsigned char* pucBuffer);
typedef int (*SDF_WriteFile_fn)(void* hSessionHandle,
                                unsigned char* pucFileName,
                                unsigned int uiNameLen, unsigned int uiOffset,
                                unsigned int uiWriteLength,
                                unsigned char* pucBuffer);
typedef int (*SDF_DeleteFile_fn)(void* hSessionHandle,
                                 unsigned char* pucFileName,
                                 unsigned int uiNameLen);

int SDF_CreateFile(void* hSessionHandle, unsigned char* pucFileName,
                   unsigned int uiNameLen, unsigned int uiFileSize);
int SDF_ReadFile(void* hSessionHandle, unsigned char* pucFileName,
                 unsigned int uiNameLen, unsigned int uiOffset,
                 unsigned int* puiReadLength, unsigned char* pucBuffer);
int SDF_WriteFile(void* hSessionHandle, unsigned char* pucFileName,
                  unsigned int uiNameLen, unsigned int uiOffset,
                  unsigned int uiWriteLength, unsigned char* pucBuffer);
int SDF_DeleteFile(void* hSessionHandle, unsigned char* pucFileName,
                   unsigned int uiNameLen);

#ifdef __cplusplus
} /* extern "C" */

/* The ABI vendors' libraries are built against (natural alignment; the
 * standard's structures need no padding). */
static_assert(sizeof(DEVICEINFO) == 100, "DEVICEINFO layout");
static_assert(sizeof(ECCrefPublicKey) == 132, "ECCrefPublicKey layout");
static_assert(sizeof(ECCrefPrivateKey) == 68, "ECCrefPrivateKey layout");
static_assert(sizeof(ECCSignature) == 128, "ECCSignature layout");
static_assert(offsetof(ECCCipher, M) == 128, "ECCCipher layout");
static_assert(offsetof(ECCCipher, L) == 160, "ECCCipher layout");
static_assert(offsetof(ECCCipher, C) == 164, "ECCCipher layout");
static_assert(sizeof(RSArefPublicKey) == 4 + 2 * RSAref_MAX_LEN,
              "RSArefPublicKey layout");
#endif

#endif /* HSMD_DAEMON_BACKEND_SDF_GMT0018_H_ */
