// What loading hsmproxy adds to a client process: threads (/proc/self/task)
// and resident memory (VmRSS), measured in a fresh process that already uses
// OpenSSL (a software P-256 key signs first), then after loading hsmproxy.so
// into the default library context, after loading an HSM key and signing
// once, and after 100 more signatures.
//
//   footprint_probe HSMPROXY_SO SOCKET KEY_URI
//
// Prints "stage THREADS RSS_KIB PRIVATE_DIRTY_KIB" lines, then
// "map RSS_DELTA_KIB PATH" lines: what each mapping (shared library, heap,
// anonymous memory) added to the resident set between the baseline and the
// first signature. Links only libcrypto, so the baseline holds nothing of
// hsmproxy's own dependencies.
#include <dirent.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace {

int CountThreads() {
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* entry = readdir(d)) n += entry->d_name[0] != '.';
  closedir(d);
  return n;
}

long ResidentKib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// Resident KiB per mapped file ("[anon]" for anonymous memory), and the
// process's private dirty total, from /proc/self/smaps.
std::map<std::string, long> MappingRss(long* private_dirty_kib) {
  std::map<std::string, long> rss;
  std::ifstream in("/proc/self/smaps");
  std::string line;
  std::string current = "[anon]";
  *private_dirty_kib = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string first;
    fields >> first;
    if (first.empty()) continue;
    if (first.back() != ':') {
      // A mapping header: "start-end perms offset dev inode [path]".
      std::string perms, offset, dev, inode, path;
      fields >> perms >> offset >> dev >> inode;
      std::getline(fields, path);
      const size_t start = path.find_first_not_of(' ');
      current = start == std::string::npos ? "[anon]" : path.substr(start);
    } else if (first == "Rss:") {
      long kib = 0;
      fields >> kib;
      rss[current] += kib;
    } else if (first == "Private_Dirty:") {
      long kib = 0;
      fields >> kib;
      *private_dirty_kib += kib;
    }
  }
  return rss;
}

void Report(const char* stage) {
  long private_dirty = 0;
  MappingRss(&private_dirty);
  std::printf("%s %d %ld %ld\n", stage, CountThreads(), ResidentKib(),
              private_dirty);
  std::fflush(stdout);
}

bool Sign(EVP_PKEY* key) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  static const unsigned char kMessage[64] = {1, 2, 3};
  unsigned char sig[512];
  size_t len = sizeof(sig);
  const bool ok =
      ctx != nullptr &&
      EVP_DigestSignInit_ex(ctx, nullptr, "SHA256", nullptr, nullptr, key,
                            nullptr) == 1 &&
      EVP_DigestSign(ctx, sig, &len, kMessage, sizeof(kMessage)) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

EVP_PKEY* LoadKey(const char* uri) {
  OSSL_STORE_CTX* store =
      OSSL_STORE_open(uri, nullptr, nullptr, nullptr, nullptr);
  if (store == nullptr) return nullptr;
  EVP_PKEY* key = nullptr;
  while (key == nullptr && !OSSL_STORE_eof(store)) {
    OSSL_STORE_INFO* info = OSSL_STORE_load(store);
    if (info == nullptr) break;
    if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY) {
      key = OSSL_STORE_INFO_get1_PKEY(info);
    }
    OSSL_STORE_INFO_free(info);
  }
  OSSL_STORE_close(store);
  return key;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s HSMPROXY_SO SOCKET KEY_URI\n", argv[0]);
    return 2;
  }
  setenv("HSMPROXY_SOCKET", argv[2], 1);
  EVP_PKEY* soft = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (soft == nullptr || !Sign(soft)) {
    std::fprintf(stderr, "software signature failed\n");
    return 1;
  }
  Report("baseline");
  long ignored = 0;
  const std::map<std::string, long> before = MappingRss(&ignored);
  OSSL_PROVIDER* hsmproxy = OSSL_PROVIDER_load(nullptr, argv[1]);
  if (hsmproxy == nullptr) {
    std::fprintf(stderr, "cannot load %s\n", argv[1]);
    return 1;
  }
  Report("loaded");
  EVP_PKEY* key = LoadKey(argv[3]);
  if (key == nullptr || !Sign(key)) {
    std::fprintf(stderr, "HSM key %s: load or signature failed\n", argv[3]);
    return 1;
  }
  Report("one_signature");
  const std::map<std::string, long> after = MappingRss(&ignored);
  for (int i = 0; i < 100; ++i) {
    if (!Sign(key)) {
      std::fprintf(stderr, "signature failed\n");
      return 1;
    }
  }
  Report("101_signatures");
  for (const auto& [path, kib] : after) {
    auto it = before.find(path);
    const long delta = kib - (it == before.end() ? 0 : it->second);
    if (delta != 0) std::printf("map %ld %s\n", delta, path.c_str());
  }
  EVP_PKEY_free(key);
  EVP_PKEY_free(soft);
  OSSL_PROVIDER_unload(hsmproxy);
  return 0;
}
