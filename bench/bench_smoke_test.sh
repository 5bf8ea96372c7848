#!/bin/bash
# The whole benchmark in smoke mode (a few hundred operations per variant,
# every phase, no thresholds): it must run to the end, every variant must
# have done its operations (each checked for correctness by the harness),
# and the reports must be complete.
set -euo pipefail

RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE:-hsmd}"
BENCH="${RUNFILES}/bench/hsmd_bench"
OUT="${TEST_TMPDIR}/smoke"

if ! timeout 280 "${BENCH}" --smoke --json_out "${OUT}.json" \
    --markdown_out "${OUT}.md" >"${OUT}.txt" 2>"${OUT}.log"; then
  echo "FAIL: hsmd_bench --smoke failed" >&2
  tail -50 "${OUT}.log" >&2
  cat "${OUT}.txt" >&2
  exit 1
fi
cat "${OUT}.txt"

# A subset of the variants (no socket_floor server) and phases runs too.
if ! timeout 120 "${BENCH}" --smoke --variants in-process,client_lib \
    --ops random_32 --skip fork,footprint,load,nginx \
    >"${OUT}-subset.txt" 2>"${OUT}-subset.log"; then
  echo "FAIL: hsmd_bench --smoke --variants in-process,client_lib failed" >&2
  tail -20 "${OUT}-subset.log" >&2
  exit 1
fi
grep -q "client_lib" "${OUT}-subset.txt" || {
  echo "FAIL: the subset run printed no client_lib row" >&2
  exit 1
}

python3 - "${OUT}.json" "${OUT}.md" <<'PYEOF'
import json, sys

report = json.load(open(sys.argv[1]))
markdown = open(sys.argv[2]).read()
problems = []

def need(cond, what):
    if not cond:
        problems.append(what)

need(report["mode"] == "smoke", "mode is not smoke")
ops = ["rsa2048_pkcs1_sign", "rsa2048_pss_sign", "rsa3072_pkcs1_sign",
       "ecdsa_p256_sign", "ecdsa_p384_sign", "ed25519_sign",
       "rsa2048_oaep_decrypt", "random_32"]
variants = ["in-process", "socket_floor", "hsmproxy", "client_lib",
            "client_lib_grpc", "software"]
cells = {(c["op"], c["variant"], c["processes"], c["threads"]): c
         for c in report["cells"]}
for op in ops:
    for v in variants:
        total = 0
        for p in (1, 2):
            for t in (1, 4):
                c = cells.get((op, v, p, t))
                need(c is not None, f"no cell {op} {v} {p}x{t}")
                if c is None:
                    continue
                need(c["ops"] > 0 and c["ops_per_second"] > 0,
                     f"{op} {v} {p}x{t}: no operations")
                need(c["latency"]["p99_us"] >= c["latency"]["p50_us"] > 0,
                     f"{op} {v} {p}x{t}: bad percentiles")
                total += c["ops"]
        need(total >= 200, f"{op} {v}: only {total} operations")
for c in report["cells"]:
    if c["variant"] in ("socket_floor", "hsmproxy", "client_lib",
                        "client_lib_grpc"):
        need(c["ratio_to_in_process"] is not None,
             f"{c['op']} {c['variant']}: no ratio")
        # The server's CPU (hsmd's, or the floor server's) is measured.
        # (hsmproxy's randomness comes from its batch: few server calls.)
        need(c["op"] == "random_32" or c["server_cpu_us_per_op"] is not None
             and c["server_cpu_us_per_op"] > 0,
             f"{c['op']} {c['variant']}: no server CPU")

forks = {(f["op"], f["variant"]): f for f in report["fork"]}
for op in ("ecdsa_p256_sign", "rsa2048_pkcs1_sign"):
    for v in ("hsmproxy", "in-process", "client_lib", "client_lib_grpc",
              "socket_floor"):
        f = forks.get((op, v))
        need(f is not None, f"fork {op} {v} missing")
        if f is None:
            continue
        # child_first: in the child, from fork() returning; fork_to_first:
        # from fork() in the parent, so it includes fork() itself.
        for key in ("child_first", "fork_to_first", "child_second"):
            need(f[key]["count"] >= 3, f"fork {op} {v}: {key} missing")
        need(f["fork_to_child"]["count"] >= 6,
             f"fork {op} {v}: fork_to_child missing")
        need(0 < f["child_first"]["p50_us"] <= f["fork_to_first"]["p50_us"],
             f"fork {op} {v}: child_first not within fork_to_first")

stages = [s["stage"] for s in report["footprint"]]
need(stages == ["baseline", "loaded", "one_signature", "101_signatures"],
     f"footprint stages {stages}")

need(len(report["daemon_load"]) == 2, "daemon load results missing")
for l in report["daemon_load"]:
    need(l["clients"] == 64 and l["ops"] >= 64,
         f"daemon load {l['op']}: {l['clients']} clients, {l['ops']} ops")

nginx = {(n["certificate"], n["key_source"]): n for n in report["nginx"]}
for cert in ("ecdsa-p256", "rsa-2048"):
    for source in ("hsmproxy", "pem"):
        n = nginx.get((cert, source))
        need(n is not None and n["handshakes"] > 0,
             f"nginx {cert} {source}: no handshakes")
    n = nginx.get((cert, "hsmproxy"))
    if n is not None:
        need(n["hsmd_signatures"] >= n["handshakes"],
             f"nginx {cert}: HSM handshakes not signed by hsmd")

need(len(report["targets"]) >= 10, "targets missing")
for t in report["targets"]:
    need(t["met"] is not None, f"target not evaluated: {t['name']}")
need(not any("FAILED" in n for n in report["notes"]),
     f"notes: {report['notes']}")
need("| Operation | procs x threads |" in markdown, "markdown table missing")
need("client_lib_grpc / in-process" in markdown,
     "markdown: no client_lib_grpc ratio column")
need("socket_floor / in-process" in markdown,
     "markdown: no socket_floor ratio column")
for t in report["targets"]:
    if t["name"].startswith("Child's first signature after fork"):
        need("measured in the child" in t["name"],
             f"fork target not measured in the child: {t['name']}")

if problems:
    print("FAIL:\n  " + "\n  ".join(problems))
    sys.exit(1)
print("bench smoke: %d cells, %d targets evaluated" %
      (len(report["cells"]), len(report["targets"])))
PYEOF
