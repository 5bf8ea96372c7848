// libfaultysdf.so: an SDF library for tests that forwards the functions hsmd
// uses to a real one (FAULTY_SDF_TARGET, e.g. libsoftsdf.so) and, on command
// from the test, fails chosen functions with chosen SDR codes or hangs them.
// The test reaches the control functions below by dlopen()ing the same path
// the backend loads (one mapping per process, so they share the state).
//
// Built three ways: complete; FAULTY_SDF_MINIMAL, without the optional
// SDF_InternalDecrypt_ECC, SDF_GetSymmKeyHandle, SDF_DestroyKey and
// SDF_ExternalVerify_ECC (a library of the 2012 standard: SM4 only through
// SDF_ImportKeyWithKEK); and FAULTY_SDF_NO_SIGN, without the required
// SDF_InternalSign_ECC.

#include <dlfcn.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "daemon/backend/sdf/gmt0018.h"

namespace {

struct Rule {
  int code = 0;
  int count = -1;  // < 0: until cleared
};

struct State {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Rule> rules;
  std::map<std::string, bool> hangs;
  std::map<std::string, unsigned long> calls;
  void* target = nullptr;
  bool target_loaded = false;
};

// Never destroyed: calls may still run during exit.
State& state() {
  static State* const s = new State();
  return *s;
}

void* Target(const char* function) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.target_loaded) {
    s.target_loaded = true;
    const char* path = getenv("FAULTY_SDF_TARGET");
    if (path == nullptr || *path == '\0') {
      fprintf(stderr, "faultysdf: FAULTY_SDF_TARGET is not set\n");
    } else {
      s.target = dlopen(path, RTLD_NOW | RTLD_LOCAL);
      if (s.target == nullptr) {
        fprintf(stderr, "faultysdf: cannot load %s: %s\n", path, dlerror());
      }
    }
  }
  return s.target == nullptr ? nullptr : dlsym(s.target, function);
}

// Counts the call, waits while a hang rule applies, and tells whether a
// failure rule applies (its code in *code).
bool Intercept(const char* function, int* code) {
  State& s = state();
  std::unique_lock<std::mutex> lock(s.mu);
  ++s.calls[function];
  s.cv.wait(lock, [&] { return !s.hangs[function] && !s.hangs["*"]; });
  for (const char* key : {function, "*"}) {
    auto it = s.rules.find(key);
    if (it == s.rules.end()) continue;
    *code = it->second.code;
    if (it->second.count > 0 && --it->second.count == 0) s.rules.erase(it);
    return true;
  }
  return false;
}

}  // namespace

extern "C" {

// Fails the next `count` calls of `function` ("*": any function) with
// `code`; count < 0 fails them until FaultySdf_Clear.
void FaultySdf_Fail(const char* function, int code, int count) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (count == 0) {
    s.rules.erase(function);
  } else {
    s.rules[function] = Rule{code, count};
  }
}

// Makes calls of `function` ("*": any) block until FaultySdf_Hang(.., 0)
// or FaultySdf_Clear.
void FaultySdf_Hang(const char* function, int on) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.hangs[function] = on != 0;
  s.cv.notify_all();
}

// Removes every rule and releases hung calls.
void FaultySdf_Clear(void) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.rules.clear();
  s.hangs.clear();
  s.cv.notify_all();
}

// Calls of `function` so far (intercepted ones included).
unsigned long FaultySdf_Calls(const char* function) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.calls.find(function);
  return it == s.calls.end() ? 0 : it->second;
}

}  // extern "C"

#define FAULTY_SDF_FORWARD(name, params, args)            \
  extern "C" int name params {                            \
    int code = SDR_OK;                                    \
    if (Intercept(#name, &code)) return code;             \
    auto fn = reinterpret_cast<name##_fn>(Target(#name)); \
    return fn == nullptr ? SDR_NOTSUPPORT : fn args;      \
  }

FAULTY_SDF_FORWARD(SDF_OpenDevice, (void** phDeviceHandle), (phDeviceHandle))
FAULTY_SDF_FORWARD(SDF_CloseDevice, (void* hDeviceHandle), (hDeviceHandle))
FAULTY_SDF_FORWARD(SDF_OpenSession,
                   (void* hDeviceHandle, void** phSessionHandle),
                   (hDeviceHandle, phSessionHandle))
FAULTY_SDF_FORWARD(SDF_CloseSession, (void* hSessionHandle), (hSessionHandle))
FAULTY_SDF_FORWARD(SDF_GetDeviceInfo,
                   (void* hSessionHandle, DEVICEINFO* pstDeviceInfo),
                   (hSessionHandle, pstDeviceInfo))
FAULTY_SDF_FORWARD(SDF_GenerateRandom,
                   (void* hSessionHandle, unsigned int uiLength,
                    unsigned char* pucRandom),
                   (hSessionHandle, uiLength, pucRandom))
FAULTY_SDF_FORWARD(SDF_GetPrivateKeyAccessRight,
                   (void* hSessionHandle, unsigned int uiKeyIndex,
                    unsigned char* pucPassword, unsigned int uiPwdLength),
                   (hSessionHandle, uiKeyIndex, pucPassword, uiPwdLength))
FAULTY_SDF_FORWARD(SDF_ReleasePrivateKeyAccessRight,
                   (void* hSessionHandle, unsigned int uiKeyIndex),
                   (hSessionHandle, uiKeyIndex))
FAULTY_SDF_FORWARD(SDF_ExportSignPublicKey_ECC,
                   (void* hSessionHandle, unsigned int uiKeyIndex,
                    ECCrefPublicKey* pucPublicKey),
                   (hSessionHandle, uiKeyIndex, pucPublicKey))
FAULTY_SDF_FORWARD(SDF_ExportEncPublicKey_ECC,
                   (void* hSessionHandle, unsigned int uiKeyIndex,
                    ECCrefPublicKey* pucPublicKey),
                   (hSessionHandle, uiKeyIndex, pucPublicKey))
#ifndef FAULTY_SDF_NO_SIGN
FAULTY_SDF_FORWARD(SDF_InternalSign_ECC,
                   (void* hSessionHandle, unsigned int uiISKIndex,
                    unsigned char* pucData, unsigned int uiDataLength,
                    ECCSignature* pucSignature),
                   (hSessionHandle, uiISKIndex, pucData, uiDataLength,
                    pucSignature))
#endif
FAULTY_SDF_FORWARD(SDF_ImportKeyWithKEK,
                   (void* hSessionHandle, unsigned int uiAlgID,
                    unsigned int uiKEKIndex, unsigned char* pucKey,
                    unsigned int uiKeyLength, void** phKeyHandle),
                   (hSessionHandle, uiAlgID, uiKEKIndex, pucKey, uiKeyLength,
                    phKeyHandle))
FAULTY_SDF_FORWARD(SDF_Encrypt,
                   (void* hSessionHandle, void* hKeyHandle,
                    unsigned int uiAlgID, unsigned char* pucIV,
                    unsigned char* pucData, unsigned int uiDataLength,
                    unsigned char* pucEncData, unsigned int* puiEncDataLength),
                   (hSessionHandle, hKeyHandle, uiAlgID, pucIV, pucData,
                    uiDataLength, pucEncData, puiEncDataLength))
FAULTY_SDF_FORWARD(SDF_Decrypt,
                   (void* hSessionHandle, void* hKeyHandle,
                    unsigned int uiAlgID, unsigned char* pucIV,
                    unsigned char* pucEncData, unsigned int uiEncDataLength,
                    unsigned char* pucData, unsigned int* puiDataLength),
                   (hSessionHandle, hKeyHandle, uiAlgID, pucIV, pucEncData,
                    uiEncDataLength, pucData, puiDataLength))
#ifndef FAULTY_SDF_MINIMAL
FAULTY_SDF_FORWARD(SDF_InternalDecrypt_ECC,
                   (void* hSessionHandle, unsigned int uiISKIndex,
                    unsigned int uiAlgID, ECCCipher* pucEncData,
                    unsigned char* pucData, unsigned int* puiDataLength),
                   (hSessionHandle, uiISKIndex, uiAlgID, pucEncData, pucData,
                    puiDataLength))
FAULTY_SDF_FORWARD(SDF_DestroyKey, (void* hSessionHandle, void* hKeyHandle),
                   (hSessionHandle, hKeyHandle))
FAULTY_SDF_FORWARD(SDF_GetSymmKeyHandle,
                   (void* hSessionHandle, unsigned int uiKeyIndex,
                    void** phKeyHandle),
                   (hSessionHandle, uiKeyIndex, phKeyHandle))
FAULTY_SDF_FORWARD(SDF_ExternalVerify_ECC,
                   (void* hSessionHandle, unsigned int uiAlgID,
                    ECCrefPublicKey* pucPublicKey, unsigned char* pucDataInput,
                    unsigned int uiInputLength, ECCSignature* pucSignature),
                   (hSessionHandle, uiAlgID, pucPublicKey, pucDataInput,
                    uiInputLength, pucSignature))
#endif
