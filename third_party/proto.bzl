"""Protobuf / gRPC C++ code generation with the system protoc (offline)."""

def _strip_ext(src):
    return src[:-len(".proto")]

def cc_proto(name, srcs, deps = [], grpc = False, lite = False, visibility = None):
    """Generates `<name>` (messages) and, with grpc = True, `<name>_grpc` (services).

    The message library links only protobuf, so client code can use it without
    pulling the gRPC C++ runtime into applications (see notes on fork safety).

    With lite = True, also `<name>_lite`: the same messages generated for the
    lite runtime (same include paths). Lite code registers no descriptors in
    the process-wide pool, so a module loaded into other programs (hsmproxy.so)
    cannot clash with a program that links its own copy of the same .proto
    (protobuf aborts on a second registration). Deps get `_lite` appended.
    The lite libraries link libprotobuf-lite only, with google.protobuf's
    Timestamp and Any from //third_party/protobuf_wkt_lite, never the full
    libprotobuf (a binary must not mix them with the full messages).
    """
    pkg = native.package_name()

    # Under //proto, import paths (and C++ include paths) are relative to
    # //proto, so the API files are named e.g. "hsmd/v1/hsmd.proto" in
    # descriptors and reflection. Elsewhere (e.g. daemon/config) they are
    # relative to the workspace root.
    if pkg.startswith("proto/"):
        root = "proto"
        rel = pkg[len("proto/"):]
        strip = "/proto"
    else:
        root = "."
        rel = pkg
        strip = None
    out_dir = "$(GENDIR)" if root == "." else "$(GENDIR)/proto"
    bases = [_strip_ext(s) for s in srcs]
    pb_outs = [b + ".pb.h" for b in bases] + [b + ".pb.cc" for b in bases]
    grpc_outs = [b + ".grpc.pb.h" for b in bases] + [b + ".grpc.pb.cc" for b in bases]
    dep_srcs = []
    for d in deps:
        dep_srcs.append(d + "_srcs")
    native.filegroup(name = name + "_srcs", srcs = srcs, visibility = visibility)
    native.genrule(
        name = name + "_gen",
        srcs = srcs + dep_srcs,
        outs = pb_outs,
        cmd = "protoc -I%s -Iproto -I/usr/include --cpp_out=%s " % (root, out_dir) +
              " ".join(["%s/%s" % (pkg, s) for s in srcs]),
    )
    native.cc_library(
        name = name,
        srcs = [b + ".pb.cc" for b in bases],
        hdrs = [b + ".pb.h" for b in bases],
        deps = deps + ["@system//:protobuf"],
        strip_include_prefix = strip,
        copts = ["-Wno-unused-parameter"],
        visibility = visibility,
    )
    if grpc:
        native.genrule(
            name = name + "_grpc_gen",
            srcs = srcs + dep_srcs,
            outs = grpc_outs,
            cmd = "protoc -I%s -Iproto -I/usr/include --grpc_out=%s " % (root, out_dir) +
                  "--plugin=protoc-gen-grpc=$$(which grpc_cpp_plugin) " +
                  " ".join(["%s/%s" % (pkg, s) for s in srcs]),
        )
        native.cc_library(
            name = name + "_grpc",
            srcs = [b + ".grpc.pb.cc" for b in bases],
            hdrs = [b + ".grpc.pb.h" for b in bases],
            deps = [":" + name, "@system//:grpcpp"],
            strip_include_prefix = strip,
            copts = ["-Wno-unused-parameter"],
            visibility = visibility,
        )
    if lite:
        # protoc writes <out>/<rel>/<base>.pb.*; keep the lite files under
        # lite/ in this package and strip that prefix for includes.
        lite_dir = "lite/" + (rel + "/" if rel else "")
        lite_outs = [lite_dir + b + ".pb.h" for b in bases] + [lite_dir + b + ".pb.cc" for b in bases]
        native.genrule(
            name = name + "_lite_gen",
            srcs = srcs + dep_srcs,
            outs = lite_outs,
            cmd = "protoc -I%s -Iproto -I/usr/include --cpp_out=lite:$(GENDIR)/%s/lite " % (root, pkg) +
                  " ".join(["%s/%s" % (pkg, s) for s in srcs]),
        )
        native.cc_library(
            name = name + "_lite",
            srcs = [lite_dir + b + ".pb.cc" for b in bases],
            hdrs = [lite_dir + b + ".pb.h" for b in bases],
            # The lite runtime only (libprotobuf-lite), with the well-known
            # types this project imports generated as lite messages.
            deps = [d + "_lite" for d in deps] + [
                "//third_party/protobuf_wkt_lite:wkt_lite",
                "@system//:protobuf_lite",
            ],
            strip_include_prefix = "lite",
            # Optimised for size: the generated code is a third of
            # hsmproxy.so, whose pages every client process maps; parsing
            # and serialising a few hundred bytes per call does not notice.
            copts = [
                "-Os",
                "-Wno-unused-parameter",
            ],
            visibility = visibility,
        )
