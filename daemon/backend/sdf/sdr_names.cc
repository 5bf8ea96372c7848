#include "daemon/backend/sdf/sdr_names.h"

#include "daemon/backend/sdf/gmt0018.h"

namespace hsmd::backend::sdf {

const char* SdrCodeName(int code) {
  switch (code) {
    case SDR_OK:
      return "SDR_OK";
    case SDR_UNKNOWERR:
      return "SDR_UNKNOWERR";
    case SDR_NOTSUPPORT:
      return "SDR_NOTSUPPORT";
    case SDR_COMMFAIL:
      return "SDR_COMMFAIL";
    case SDR_HARDFAIL:
      return "SDR_HARDFAIL";
    case SDR_OPENDEVICE:
      return "SDR_OPENDEVICE";
    case SDR_OPENSESSION:
      return "SDR_OPENSESSION";
    case SDR_PARDENY:
      return "SDR_PARDENY";
    case SDR_KEYNOTEXIST:
      return "SDR_KEYNOTEXIST";
    case SDR_ALGNOTSUPPORT:
      return "SDR_ALGNOTSUPPORT";
    case SDR_ALGMODNOTSUPPORT:
      return "SDR_ALGMODNOTSUPPORT";
    case SDR_PKOPERR:
      return "SDR_PKOPERR";
    case SDR_SKOPERR:
      return "SDR_SKOPERR";
    case SDR_SIGNERR:
      return "SDR_SIGNERR";
    case SDR_VERIFYERR:
      return "SDR_VERIFYERR";
    case SDR_SYMOPERR:
      return "SDR_SYMOPERR";
    case SDR_STEPERR:
      return "SDR_STEPERR";
    case SDR_FILESIZEERR:
      return "SDR_FILESIZEERR";
    case SDR_FILENOEXIST:
      return "SDR_FILENOEXIST";
    case SDR_FILEOFSERR:
      return "SDR_FILEOFSERR";
    case SDR_KEYTYPEERR:
      return "SDR_KEYTYPEERR";
    case SDR_KEYERR:
      return "SDR_KEYERR";
    case SDR_ENCDATAERR:
      return "SDR_ENCDATAERR";
    case SDR_RANDERR:
      return "SDR_RANDERR";
    case SDR_PRKRERR:
      return "SDR_PRKRERR";
    case SDR_MACERR:
      return "SDR_MACERR";
    case SDR_FILEEXSITS:
      return "SDR_FILEEXSITS";
    case SDR_FILEWERR:
      return "SDR_FILEWERR";
    case SDR_NOBUFFER:
      return "SDR_NOBUFFER";
    case SDR_INARGERR:
      return "SDR_INARGERR";
    case SDR_OUTARGERR:
      return "SDR_OUTARGERR";
    default:
      return nullptr;
  }
}

}  // namespace hsmd::backend::sdf
