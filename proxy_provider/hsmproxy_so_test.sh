#!/usr/bin/env bash
# What hsmproxy.so shows to the programs that load it:
# - it exports OSSL_provider_init and nothing else (provider.lds), so its
#   private copies of the lite hsmd.proto / google.rpc.Status / Timestamp /
#   Any messages and of client_lib never interpose on a program's own;
# - it links the lite protobuf runtime, never the full libprotobuf.so (which
#   costs a client process ~1.9 MiB of resident memory instead of ~0.5 MiB;
#   see bench/README.md, footprint) and no gRPC runtime.
set -euo pipefail

so="${TEST_SRCDIR}/${TEST_WORKSPACE}/proxy_provider/hsmproxy.so"
[[ -f "$so" ]] || { echo "FAIL: $so not found"; exit 1; }
failures=0

exports="$(nm -D --defined-only "$so" | awk '{print $3}' | sort)"
if [[ "$exports" != "OSSL_provider_init" ]]; then
  echo "FAIL: hsmproxy.so must export only OSSL_provider_init; it exports:"
  echo "$exports"
  failures=$((failures + 1))
else
  echo "ok: exports only OSSL_provider_init"
fi

needed="$(readelf -d "$so" | awk '/\(NEEDED\)/ {gsub(/[][]/, "", $5); print $5}')"
if grep -Eq '^libprotobuf\.so' <<<"$needed"; then
  echo "FAIL: hsmproxy.so links the full libprotobuf.so:"
  echo "$needed"
  failures=$((failures + 1))
elif ! grep -Eq '^libprotobuf-lite\.so' <<<"$needed"; then
  echo "FAIL: hsmproxy.so does not link libprotobuf-lite.so:"
  echo "$needed"
  failures=$((failures + 1))
else
  echo "ok: links libprotobuf-lite, not libprotobuf"
fi
if grep -Eq '^libgrpc' <<<"$needed"; then
  echo "FAIL: hsmproxy.so links the gRPC runtime:"
  echo "$needed"
  failures=$((failures + 1))
else
  echo "ok: no gRPC runtime"
fi

# The lite well-known types are hsmproxy's own, not imports from a full
# runtime that a host program may or may not have loaded.
imported_wkt="$(nm -D --undefined-only "$so" | c++filt |
  grep -E 'google::protobuf::(Timestamp|Any)\b' || true)"
if [[ -n "$imported_wkt" ]]; then
  echo "FAIL: hsmproxy.so imports Timestamp/Any symbols:"
  echo "$imported_wkt"
  failures=$((failures + 1))
else
  echo "ok: Timestamp/Any are hsmproxy's own"
fi

if ((failures > 0)); then
  echo "${failures} check(s) failed"
  exit 1
fi
echo "all checks passed"
